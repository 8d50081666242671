; Block bodies (@block.body) and the "{" that opens them (@block.opener).
; Method, lambda, initializer and statement bodies are `block`; constructors have their own
; `constructor_body`. Array initializers are expressions, not blocks.

(block "{" @block.opener) @block.body

(constructor_body "{" @block.opener) @block.body

(class_body "{" @block.opener) @block.body

(interface_body "{" @block.opener) @block.body

(enum_body "{" @block.opener) @block.body

(annotation_type_body "{" @block.opener) @block.body

(switch_block "{" @block.opener) @block.body

(module_body "{" @block.opener) @block.body
