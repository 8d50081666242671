; Functions (@definition.function), types (@definition.class) and their names (@name).

(function_item
  name: (identifier) @name) @definition.function

; Trait methods without a default body: the only place such a method is declared.
(function_signature_item
  name: (identifier) @name) @definition.function

(struct_item
  name: (type_identifier) @name) @definition.class

(enum_item
  name: (type_identifier) @name) @definition.class

(union_item
  name: (type_identifier) @name) @definition.class

(trait_item
  name: (type_identifier) @name) @definition.class

(mod_item
  name: (identifier) @name) @definition.class

; An impl is named after the type it implements for (not the trait), without generic arguments
; or path: `impl<T> fmt::Display for a::Wrapper<T>` is named `Wrapper`.
(impl_item
  type: [
    (type_identifier) @name
    (generic_type type: (type_identifier) @name)
    (scoped_type_identifier name: (type_identifier) @name)
    (generic_type type: (scoped_type_identifier name: (type_identifier) @name))
  ]) @definition.class
