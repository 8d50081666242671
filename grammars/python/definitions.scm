; Functions and methods (@definition.function), classes (@definition.class), their names (@name).
; A decorated definition is captured without its decorators: the `function_definition` or
; `class_definition` node itself.

(function_definition
  name: (identifier) @name) @definition.function

(class_definition
  name: (identifier) @name) @definition.class
