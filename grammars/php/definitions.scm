; Functions and methods (@definition.function), classes, interfaces, traits, enums and
; namespaces (@definition.class), names (@name). Abstract and interface methods count too.

(function_definition
  name: (name) @name) @definition.function

(method_declaration
  name: (name) @name) @definition.function

(class_declaration
  name: (name) @name) @definition.class

(interface_declaration
  name: (name) @name) @definition.class

(trait_declaration
  name: (name) @name) @definition.class

(enum_declaration
  name: (name) @name) @definition.class

; `namespace App\Http;` and `namespace App { }`; a global `namespace { }` has no name.
(namespace_definition
  name: (namespace_name) @name) @definition.class
