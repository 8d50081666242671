; Functions, initializers and deinitializers (@definition.function), types, extensions and
; protocols (@definition.class), names (@name). `init` and `deinit` are named by their keyword.
; Protocol requirements (`func area() -> Double` in a protocol) count too.

(function_declaration
  name: (simple_identifier) @name) @definition.function

(protocol_function_declaration
  name: (simple_identifier) @name) @definition.function

(init_declaration
  name: "init" @name) @definition.function

(deinit_declaration
  "deinit" @name) @definition.function

; `class`, `struct`, `enum`, `actor` and `extension` are all `class_declaration`; an extension
; is named by the type it extends.
(class_declaration
  name: (_) @name) @definition.class

(protocol_declaration
  name: (type_identifier) @name) @definition.class
