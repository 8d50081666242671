; Block bodies (@block.body) and the "{" that opens them (@block.opener).
; Function and statement bodies are `compound_statement`; struct/union bodies are
; `field_declaration_list`, enum bodies `enumerator_list`, `extern "C" {}` bodies
; `declaration_list`. Initializer lists (`{1, 2}`) are expressions, not blocks.
; C++ inherits this file, so only nodes it shares belong here.

(compound_statement "{" @block.opener) @block.body

(field_declaration_list "{" @block.opener) @block.body

(enumerator_list "{" @block.opener) @block.body

(declaration_list "{" @block.opener) @block.body
