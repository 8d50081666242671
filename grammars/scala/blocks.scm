; Block bodies (@block.body) and the token that opens them (@block.opener).
; Braced bodies hold their own "{": `block` (function, lambda and expression bodies),
; `template_body` (class/trait/object bodies; in Scala 3 they may open with ":" instead),
; `enum_body`, `case_block` (`x match { ... }`).
; Scala 3 indentation syntax: an `indented_block` starts at its first statement and ends at its
; last one; its opener ("=", "then", "do", ...) belongs to the parent construct, so those
; patterns name the parent.

(block "{" @block.opener) @block.body

(template_body ["{" ":"] @block.opener) @block.body

(with_template_body "{" @block.opener) @block.body

(enum_body ["{" ":"] @block.opener) @block.body

(case_block "{" @block.opener) @block.body

(function_definition "=" @block.opener body: (indented_block) @block.body)

(val_definition "=" @block.opener value: (indented_block) @block.body)

(var_definition "=" @block.opener value: (indented_block) @block.body)

(if_expression "then" @block.opener consequence: (indented_block) @block.body)

(if_expression "else" @block.opener alternative: (indented_block) @block.body)

(for_expression ["do" "yield"] @block.opener body: (indented_block) @block.body)

(while_expression "do" @block.opener body: (indented_block) @block.body)

(try_expression "try" @block.opener body: (indented_block) @block.body)

(finally_clause "finally" @block.opener (indented_block) @block.body)

(match_expression "match" @block.opener body: (indented_cases) @block.body)
