; Methods, constructors, destructors and local functions (@definition.function), types and
; namespaces (@definition.class), names (@name). Operators have no name and are left out.
; Interface and abstract methods are `method_declaration`s without a body, and count too.

(method_declaration
  name: (identifier) @name) @definition.function

(constructor_declaration
  name: (identifier) @name) @definition.function

(destructor_declaration
  name: (identifier) @name) @definition.function

(local_function_statement
  name: (identifier) @name) @definition.function

(class_declaration
  name: (identifier) @name) @definition.class

(struct_declaration
  name: (identifier) @name) @definition.class

(interface_declaration
  name: (identifier) @name) @definition.class

(enum_declaration
  name: (identifier) @name) @definition.class

(record_declaration
  name: (identifier) @name) @definition.class

; `namespace A.B { }` and file-scoped `namespace A.B;`: the name may be qualified.
(namespace_declaration
  name: (_) @name) @definition.class

(file_scoped_namespace_declaration
  name: (_) @name) @definition.class
