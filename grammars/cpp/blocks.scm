; inherits: c
; C++ adds nothing new: class bodies are `field_declaration_list`, namespace bodies
; `declaration_list`, lambda/try/catch bodies `compound_statement`, all covered by C's patterns.
; Requirement sequences (`requires { ... }`) are constraints, not blocks.
