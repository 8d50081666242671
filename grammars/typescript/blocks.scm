; inherits: javascript
; TypeScript adds interface, enum and namespace bodies. `object_type` (`{ a: string }` in a type)
; is a type literal, not a block. Namespace (`namespace A {}`, `declare module "m" {}`) bodies
; are `statement_block`, inherited.

(interface_body "{" @block.opener) @block.body

(enum_body "{" @block.opener) @block.body
