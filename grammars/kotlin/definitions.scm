; Functions (@definition.function), classes, interfaces, enums and objects (@definition.class),
; names (@name). Interface methods without a body count too. A definition with no name of its
; own is named by its keyword: `constructor(...)`, `companion object`.

(function_declaration
  name: (identifier) @name) @definition.function

(secondary_constructor
  "constructor" @name) @definition.function

; `class`, `interface`, `enum class`, `data class`, ...: all `class_declaration`.
(class_declaration
  name: (identifier) @name) @definition.class

(object_declaration
  name: (identifier) @name) @definition.class

(companion_object
  name: (identifier) @name) @definition.class

(companion_object
  "companion" @name
  !name) @definition.class
