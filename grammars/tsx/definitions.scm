; inherits: typescript
; TSX has the same definitions as TypeScript. A React component is a function or a class.
