; inherits: javascript
; TypeScript adds abstract classes, interfaces, enums, namespaces and body-less signatures.

; Signatures without a body: overloads and `declare function`, abstract methods, and interface
; methods (the only place an interface method is declared).
(function_signature
  name: (identifier) @name) @definition.function

(abstract_method_signature
  name: (_) @name) @definition.function

(method_signature
  name: (_) @name) @definition.function

; Class fields holding a function: `handle = () => {}`.
(public_field_definition
  name: (property_identifier) @name
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.function

(abstract_class_declaration
  name: (type_identifier) @name) @definition.class

(interface_declaration
  name: (type_identifier) @name) @definition.class

(enum_declaration
  name: (identifier) @name) @definition.class

; `namespace A.B {}` (internal_module) and `module A {}` / `declare module "m" {}` (module).
(internal_module
  name: (_) @name) @definition.class

(module
  name: (_) @name) @definition.class
