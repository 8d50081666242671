; inherits: c
; C++ adds classes, namespaces, methods, constructors, destructors and operators. A function
; inside a `template_declaration` is captured without its template header.

; Methods defined in a class body: `void f() {}`, `~A() {}`, `bool operator==(...)`, and
; constructors (named by an `identifier`, matched by C's pattern).
(function_definition
  declarator: (function_declarator
    declarator: [(field_identifier) (destructor_name) (operator_name)] @name)) @definition.function

; Out-of-class definitions, `A::f`, `ns::A::f`: the name is the last path segment.
(function_definition
  declarator: (function_declarator
    declarator: (qualified_identifier
      name: [(identifier) (field_identifier) (destructor_name) (operator_name)] @name))) @definition.function

(function_definition
  declarator: (function_declarator
    declarator: (qualified_identifier
      name: (qualified_identifier
        name: [(identifier) (field_identifier) (destructor_name) (operator_name)] @name)))) @definition.function

; Pointer and reference return types wrap the declarator: `T* A::get()`, `T& at(int i)`.
(function_definition
  declarator: (reference_declarator
    (function_declarator
      declarator: [(identifier) (field_identifier) (operator_name)] @name))) @definition.function

(function_definition
  declarator: (reference_declarator
    (function_declarator
      declarator: (qualified_identifier
        name: [(identifier) (field_identifier) (operator_name)] @name)))) @definition.function

(function_definition
  declarator: (pointer_declarator
    declarator: (function_declarator
      declarator: [(field_identifier) (operator_name)] @name))) @definition.function

(function_definition
  declarator: (pointer_declarator
    declarator: (function_declarator
      declarator: (qualified_identifier
        name: [(identifier) (field_identifier) (operator_name)] @name)))) @definition.function

; Pure virtual methods, `virtual double area() const = 0;`: like interface methods, the only
; declaration of the method. Other member declarations are prototypes and are left out.
(field_declaration
  declarator: (function_declarator declarator: (field_identifier) @name)
  default_value: (number_literal) @_zero
  (#eq? @_zero "0")) @definition.function

(class_specifier
  name: (_) @name
  body: (field_declaration_list)) @definition.class

(namespace_definition
  name: (_) @name) @definition.class
