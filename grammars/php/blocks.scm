; Block bodies (@block.body) and the "{" or ":" that opens them (@block.opener).
; Function, method, closure and statement bodies are `compound_statement`; class, interface and
; trait bodies are `declaration_list`. Arrays are expressions, not blocks.

(compound_statement "{" @block.opener) @block.body

(declaration_list "{" @block.opener) @block.body

(enum_declaration_list "{" @block.opener) @block.body

(switch_block ["{" ":"] @block.opener) @block.body

(match_block "{" @block.opener) @block.body

; Alternative syntax, `if ($x): ... endif;`: the block holds its ":" but ends at its last
; statement; the closing `endif`/`endwhile`/... belongs to the parent statement.
(colon_block ":" @block.opener) @block.body
