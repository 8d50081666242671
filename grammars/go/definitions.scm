; Functions and methods (@definition.function), types (@definition.class), names (@name).

(function_declaration
  name: (identifier) @name) @definition.function

(method_declaration
  name: (field_identifier) @name) @definition.function

; Interface methods: the only place such a method is declared.
(method_elem
  name: (field_identifier) @name) @definition.function

; Struct and interface types. The `type_spec` is the definition (one `type (...)` group may hold
; several); other named types (`type Celsius float64`) are not classes.
(type_spec
  name: (type_identifier) @name
  type: [(struct_type) (interface_type)]) @definition.class
