; inherits: typescript
; TSX has the same blocks as TypeScript; JSX elements are expressions, not blocks.
