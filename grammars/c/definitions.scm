; Function definitions (@definition.function), struct/union/enum types (@definition.class) and
; their names (@name). Prototypes (`int f(void);`) are declarations of a definition found
; elsewhere and are left out. C++ inherits this file, so only nodes it shares belong here.

; The name sits under the declarator chain: `f(...)`, `*f(...)`, `**f(...)`.
(function_definition
  declarator: [
    (function_declarator declarator: (identifier) @name)
    (pointer_declarator declarator: (function_declarator declarator: (identifier) @name))
    (pointer_declarator
      declarator: (pointer_declarator declarator: (function_declarator declarator: (identifier) @name)))
  ]) @definition.function

; Only specifiers with a body define a type: `struct point p;` merely uses one.
(struct_specifier
  name: (type_identifier) @name
  body: (field_declaration_list)) @definition.class

(union_specifier
  name: (type_identifier) @name
  body: (field_declaration_list)) @definition.class

(enum_specifier
  name: (type_identifier) @name
  body: (enumerator_list)) @definition.class

; `typedef struct { ... } point;`: an anonymous type is named by its typedef.
(type_definition
  type: [
    (struct_specifier !name body: (field_declaration_list))
    (union_specifier !name body: (field_declaration_list))
    (enum_specifier !name body: (enumerator_list))
  ]
  declarator: (type_identifier) @name) @definition.class
