; Block bodies (@block.body) and the token that opens them (@block.opener).
; Function, constructor, init, loop, if/else, try/catch/finally and `when` branch bodies are
; `block`; class, interface and object bodies are `class_body`; lambdas (`list.map { ... }`)
; are `lambda_literal`, which holds its own "{".

(block "{" @block.opener) @block.body

(class_body "{" @block.opener) @block.body

(enum_class_body "{" @block.opener) @block.body

(lambda_literal "{" @block.opener) @block.body

; `when (x) { ... }` has no body node: the whole expression stands in, ending at its "}".
(when_expression "{" @block.opener) @block.body

; Expression bodies, `fun f() = expr`: the body runs from "=" to the end of the expression.
(function_body "=" @block.opener) @block.body
