; Functions (@definition.function) and their names (@name): `f() { }` and `function f { }`.
; Shell has no classes.

(function_definition
  name: (word) @name) @definition.function
