; Block bodies (@block.body) and the token that opens them (@block.opener): a function's
; parameter list closer ")", `then`, `else`, `do`, `repeat`.
; A Lua `block` starts at its first statement and ends at its last one (the `end` belongs to the
; parent), and a body with no statements has no `block` at all. For those, the whole construct
; stands in for its body (the `!body` / `!consequence` patterns): it runs to its `end`, so the
; cursor in `function f()` + blank line + `end` is still inside a block that ends at that `end`.
; Table constructors (`{ ... }`) are expressions, not blocks.

(function_declaration
  parameters: (parameters ")" @block.opener)
  body: (block) @block.body)

(function_definition
  parameters: (parameters ")" @block.opener)
  body: (block) @block.body)

(if_statement "then" @block.opener consequence: (block) @block.body)

(elseif_statement "then" @block.opener consequence: (block) @block.body)

(else_statement "else" @block.opener body: (block) @block.body)

(for_statement "do" @block.opener body: (block) @block.body)

(while_statement "do" @block.opener body: (block) @block.body)

(do_statement "do" @block.opener body: (block) @block.body)

(repeat_statement "repeat" @block.opener body: (block) @block.body)

; Empty bodies: the construct stands in (see above). An empty `elseif`/`else` ends at its
; keyword, so it cannot hold the cursor; the enclosing `if` (which runs to `end`) does.
((function_declaration parameters: (parameters ")" @block.opener) !body) @block.body)

((function_definition parameters: (parameters ")" @block.opener) !body) @block.body)

((if_statement "then" @block.opener !consequence) @block.body)

((for_statement "do" @block.opener !body) @block.body)

((while_statement "do" @block.opener !body) @block.body)

((do_statement "do" @block.opener !body) @block.body)

((repeat_statement "repeat" @block.opener !body) @block.body)
