; Functions and methods (@definition.function), classes (@definition.class), names (@name).
; TypeScript and TSX inherit this file, so only nodes they share belong here (class names are
; `identifier` in JavaScript but `type_identifier` in TypeScript, hence `(_)`).

(function_declaration
  name: (identifier) @name) @definition.function

(generator_function_declaration
  name: (identifier) @name) @definition.function

; Named function expressions: `const f = function g() {}` defines `g` here and `f` below.
(function_expression
  name: (identifier) @name) @definition.function

(generator_function
  name: (identifier) @name) @definition.function

(method_definition
  name: (_) @name) @definition.function

; `const f = () => {}`, `let f = function () {}`: the declarator is the definition.
(variable_declarator
  name: (identifier) @name
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.function

; `{ f: () => {} }` and `{ f: function () {} }` in object literals.
(pair
  key: (property_identifier) @name
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.function

(class_declaration
  name: (_) @name) @definition.class

; Named class expressions: `const A = class B {}`.
(class
  name: (_) @name) @definition.class

; Class fields holding a function: `handle = () => {}`. The node is `field_definition` here but
; `public_field_definition` in TypeScript, which inherits this file; a wildcard with the field
; names keeps the pattern valid in both (TypeScript names the field `name:`, so it adds its own).
(_
  property: (property_identifier) @name
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.function
