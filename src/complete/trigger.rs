//! Whether and how to suggest at a cursor: none, single-line or multi-line. Pure.
