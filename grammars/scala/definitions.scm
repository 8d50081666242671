; Methods (@definition.function), classes, traits, objects and enums (@definition.class),
; names (@name). Abstract methods (`def area: Double` in a trait) are `function_declaration`s
; and count too.

(function_definition
  name: (_) @name) @definition.function

(function_declaration
  name: (_) @name) @definition.function

(class_definition
  name: (_) @name) @definition.class

(trait_definition
  name: (_) @name) @definition.class

(object_definition
  name: (_) @name) @definition.class

(enum_definition
  name: (_) @name) @definition.class

(package_object
  name: (_) @name) @definition.class
