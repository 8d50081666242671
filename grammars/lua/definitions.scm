; Functions (@definition.function) and their names (@name). Lua has no classes: modules and
; "classes" are tables, which are left out.

; `function f()`, `function M.f()`, `function M:f()`, `local function f()`: the last segment.
(function_declaration
  name: [
    (identifier) @name
    (dot_index_expression field: (identifier) @name)
    (method_index_expression method: (identifier) @name)
  ]) @definition.function

; `M.f = function() end`, `local f = function() end`: the assignment is the definition.
(assignment_statement
  (variable_list
    .
    name: [
      (identifier) @name
      (dot_index_expression field: (identifier) @name)
    ])
  (expression_list
    .
    value: (function_definition))) @definition.function

; `{ f = function() end }` in a table constructor.
(field
  name: (identifier) @name
  value: (function_definition)) @definition.function
