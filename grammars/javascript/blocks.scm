; Block bodies (@block.body) and the "{" that opens them (@block.opener).
; Every statement body, function/method/arrow body, catch/finally body and static block is a
; `statement_block`; class bodies are `class_body`; switch bodies are `switch_body`.
; Object literals (`object`) are expressions, not blocks.
; TypeScript and TSX inherit this file, so only nodes they share belong here.

(statement_block "{" @block.opener) @block.body

(class_body "{" @block.opener) @block.body

(switch_body "{" @block.opener) @block.body
