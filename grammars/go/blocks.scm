; Block bodies (@block.body) and the "{" that opens them (@block.opener).
; Function, method, closure, if/else and for bodies are `block`; struct bodies are
; `field_declaration_list`. Composite literals (`literal_value`) are expressions, not blocks.

(block "{" @block.opener) @block.body

(field_declaration_list "{" @block.opener) @block.body

; An interface, switch or select has no body node: its "{" and cases are children of the
; construct itself, so the whole construct stands in for the body. It ends at the closing "}"
; like a body would, but starts at the keyword.
(interface_type "{" @block.opener) @block.body

(expression_switch_statement "{" @block.opener) @block.body

(type_switch_statement "{" @block.opener) @block.body

(select_statement "{" @block.opener) @block.body
