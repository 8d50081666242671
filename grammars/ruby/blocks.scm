; Block bodies (@block.body) and the keyword or "{" that opens them (@block.opener).
;
; Ruby bodies come in two shapes:
; - `then` (if/unless/elsif/when/in/rescue) and `do` (while/until/for) start right after the
;   header, so blank lines before the first statement are inside them. `do` runs to `end`.
; - `body_statement` (def/class/module) starts at the first statement and ends at the last one.
;   `def`, `class` and `module` have no opening token, so those matches have no @block.opener.
;
; A body with no statements yet has no node at all: `def f` + blank line + `end` is a bare
; `method`. For those, the whole construct stands in for its body (patterns with `!body` or
; `!consequence`): it runs to its `end`, so the cursor is still inside a block that ends where
; the real body will. Callers must not assume a body's first child is a statement.

(method body: (body_statement) @block.body)

(singleton_method body: (body_statement) @block.body)

(class body: (body_statement) @block.body)

(module body: (body_statement) @block.body)

(singleton_class body: (body_statement) @block.body)

; `foo do |x| ... end` and `foo { |x| ... }`: the block node itself, from opener to closer.
(do_block "do" @block.opener) @block.body

(block "{" @block.opener) @block.body

; `then` keywords and `do` after `while x` are optional.
(then "then"? @block.opener) @block.body

(do "do"? @block.opener) @block.body

(else "else" @block.opener) @block.body

(ensure "ensure" @block.opener) @block.body

; `begin ... end` has no body node: its statements are its children.
(begin "begin" @block.opener) @block.body

; Empty bodies: the construct stands in (see above).
(method !body) @block.body

(singleton_method !body) @block.body

(class !body) @block.body

(module !body) @block.body

(singleton_class !body) @block.body

(if !consequence) @block.body

(unless !consequence) @block.body
