; Methods (@definition.function), classes and modules (@definition.class), names (@name).
; `class A::B` is named by its whole `scope_resolution` (`A::B`).

(method
  name: (_) @name) @definition.function

; `def self.make`: named `make`.
(singleton_method
  name: (_) @name) @definition.function

(class
  name: (_) @name) @definition.class

(module
  name: (_) @name) @definition.class
