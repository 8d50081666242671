; Block bodies (@block.body) and the token that opens them (@block.opener).
; Every Rust body is a braced node that holds its own "{": fn/closure/if/loop/unsafe/async
; bodies are `block`; mod/impl/trait/extern bodies are `declaration_list`.
; Struct literals (`field_initializer_list`) are expressions, not blocks.

(block "{" @block.opener) @block.body

(declaration_list "{" @block.opener) @block.body

(field_declaration_list "{" @block.opener) @block.body

(enum_variant_list "{" @block.opener) @block.body

(match_block "{" @block.opener) @block.body
