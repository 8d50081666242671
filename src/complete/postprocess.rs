//! From the model's raw text to what is shown: early cut while streaming, truncation at the end
//! of the block, overlap with the text after the cursor, and the drop rules. Pure.
