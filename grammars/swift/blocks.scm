; Block bodies (@block.body) and the "{" that opens them (@block.opener).
; Function, init and deinit bodies are `function_body`; type bodies are `class_body`,
; `enum_class_body` and `protocol_body`; closures (`{ x in ... }`) are `lambda_literal`.

(function_body "{" @block.opener) @block.body

(class_body "{" @block.opener) @block.body

(enum_class_body "{" @block.opener) @block.body

(protocol_body "{" @block.opener) @block.body

(lambda_literal "{" @block.opener) @block.body

; Computed properties, `var v: Int { get { ... } set { ... } }`.
(computed_property "{" @block.opener) @block.body

(computed_getter "{" @block.opener) @block.body

(computed_setter "{" @block.opener) @block.body

(computed_modify "{" @block.opener) @block.body

; Control flow has no body node: the "{", the statements and the "}" are children of the
; statement itself, so the whole statement stands in. It starts at the keyword; it ends at the
; closing "}" except where more follows in the same node (an `else { }` branch, `do`'s catch
; blocks, `repeat`'s `while` condition). An `if` with an `else` has two "{" and so two matches
; for the same node; the opener that applies is the last one before the cursor.
(if_statement "{" @block.opener) @block.body

(guard_statement "{" @block.opener) @block.body

(for_statement "{" @block.opener) @block.body

(while_statement "{" @block.opener) @block.body

(repeat_while_statement "{" @block.opener) @block.body

(switch_statement "{" @block.opener) @block.body

(do_statement "{" @block.opener) @block.body

(catch_block "{" @block.opener) @block.body
