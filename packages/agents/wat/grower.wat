;; grower: memory of 1 page (64 KiB) with a maximum of 4 pages.
(module
  (memory (export "memory") 1 4)

  ;; memory.grow by `pages`: the previous size in pages, or -1 when it would exceed the maximum.
  (func (export "grow") (param $pages i32) (result i32)
    (memory.grow (local.get $pages)))

  ;; Current size in pages.
  (func (export "size") (result i32)
    (memory.size))

  ;; Writes byte `value` at `addr` (traps out of bounds).
  (func (export "poke") (param $addr i32) (param $value i32)
    (i32.store8 (local.get $addr) (local.get $value)))

  ;; Reads the byte at `addr` (traps out of bounds).
  (func (export "peek") (param $addr i32) (result i32)
    (i32.load8_u (local.get $addr)))

  (func (export "_health_check") (result i32)
    (i32.const 0)))
