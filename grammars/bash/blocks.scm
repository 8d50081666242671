; Block bodies (@block.body) and the token that opens them (@block.opener).
; `{ ... }` is `compound_statement`; the `do ... done` of for/while/until/select is `do_group`.

(compound_statement "{" @block.opener) @block.body

(do_group "do" @block.opener) @block.body

; `f() ( ... )`: a function whose body runs in a subshell.
(function_definition body: (subshell "(" @block.opener) @block.body)

; `if` and `case` have no body node: `then`/`in` and the statements are children of the
; construct, so the whole construct stands in (it ends at `fi`/`esac`). `elif` and `else`
; clauses run from their keyword to their last statement (`fi` belongs to the `if`).
(if_statement "then" @block.opener) @block.body

(elif_clause "then" @block.opener) @block.body

(else_clause "else" @block.opener) @block.body

(case_statement "in" @block.opener) @block.body
