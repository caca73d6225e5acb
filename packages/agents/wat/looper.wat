;; looper: a CPU hog. `spin` never returns (the host must preempt it with a
;; worker terminate or fuel); `spin_n` runs a bounded loop.
(module
  (global $iterations (mut i64) (i64.const 0))

  ;; Loops forever.
  (func (export "spin")
    (loop $forever
      (global.set $iterations (i64.add (global.get $iterations) (i64.const 1)))
      (br $forever)))

  ;; Loops n times (n <= 0: not at all); returns the number of iterations run.
  (func (export "spin_n") (param $n i32) (result i32)
    (local $i i32)
    (block $done
      (loop $again
        (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
        (global.set $iterations (i64.add (global.get $iterations) (i64.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $again)))
    (local.get $i))

  ;; Total iterations run by spin and spin_n since instantiation.
  (func (export "iterations") (result i64)
    (global.get $iterations))

  (func (export "_health_check") (result i32)
    (i32.const 0)))
