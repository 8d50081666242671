; Methods and constructors (@definition.function), types (@definition.class), names (@name).
; Abstract and interface methods are `method_declaration`s without a body, and count too.

(method_declaration
  name: (identifier) @name) @definition.function

(constructor_declaration
  name: (identifier) @name) @definition.function

; Record compact constructors: `record P(int x) { P { ... } }`.
(compact_constructor_declaration
  name: (identifier) @name) @definition.function

(class_declaration
  name: (identifier) @name) @definition.class

(interface_declaration
  name: (identifier) @name) @definition.class

(enum_declaration
  name: (identifier) @name) @definition.class

(record_declaration
  name: (identifier) @name) @definition.class

(annotation_type_declaration
  name: (identifier) @name) @definition.class

(module_declaration
  name: (_) @name) @definition.class
