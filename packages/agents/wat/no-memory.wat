;; no-memory: functions and a global, but no linear memory at all (memory usage
;; is 0 bytes; snapshots hold only globals).
(module
  (global $total (mut i32) (i32.const 0))

  (func (export "add") (param $a i32) (param $b i32) (result i32)
    (i32.add (local.get $a) (local.get $b)))

  ;; Adds n to an internal (not exported) mutable global; returns the new total.
  (func (export "accumulate") (param $n i32) (result i32)
    (global.set $total (i32.add (global.get $total) (local.get $n)))
    (global.get $total))

  ;; n! for n >= 0 (i64, wrapping).
  (func $fact (export "factorial") (param $n i64) (result i64)
    (if (result i64) (i64.le_s (local.get $n) (i64.const 1))
      (then (i64.const 1))
      (else (i64.mul (local.get $n) (call $fact (i64.sub (local.get $n) (i64.const 1)))))))

  (func (export "_health_check") (result i32)
    (i32.const 0)))
