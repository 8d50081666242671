//! What the model sees: the prefix and suffix within a token budget, and snippets from other open
//! documents of the same language. Pure.
