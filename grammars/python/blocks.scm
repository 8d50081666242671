; Block bodies (@block.body) and the ":" that opens them (@block.opener).
; The ":" belongs to the compound statement, not to its `block`, so each pattern names the parent.
; A `block` spans its statements only: it starts at the first statement (not at the ":") and
; ends at the last one, so blank lines before, between or after statements can fall outside it.
; A body with no statements yet (`def f():` then an empty line) parses as a zero-width `block`
; right after the ":". See tests/queries.rs for what callers do in that case.

(function_definition ":" @block.opener body: (block) @block.body)

(class_definition ":" @block.opener body: (block) @block.body)

(if_statement ":" @block.opener consequence: (block) @block.body)

(elif_clause ":" @block.opener consequence: (block) @block.body)

(else_clause ":" @block.opener body: (block) @block.body)

(for_statement ":" @block.opener body: (block) @block.body)

(while_statement ":" @block.opener body: (block) @block.body)

(try_statement ":" @block.opener body: (block) @block.body)

(except_clause ":" @block.opener (block) @block.body)

(finally_clause ":" @block.opener (block) @block.body)

(with_statement ":" @block.opener body: (block) @block.body)

(match_statement ":" @block.opener body: (block) @block.body)

(case_clause ":" @block.opener consequence: (block) @block.body)
