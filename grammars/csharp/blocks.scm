; Block bodies (@block.body) and the "{" that opens them (@block.opener).
; Method, accessor, lambda and statement bodies are `block`; class, struct, interface, record
; and namespace bodies are `declaration_list`. Object and collection initializers are
; expressions, not blocks.

(block "{" @block.opener) @block.body

(declaration_list "{" @block.opener) @block.body

(enum_member_declaration_list "{" @block.opener) @block.body

(switch_body "{" @block.opener) @block.body

; `{ get; set; }` after a property, indexer or event.
(accessor_list "{" @block.opener) @block.body

; `x switch { ... }` has no body node: the whole expression stands in, ending at its "}".
(switch_expression "{" @block.opener) @block.body
