;; host-caller: calls functions the host provides as imports.
(module
  (import "env" "log" (func $log (param i32)))
  (import "env" "now" (func $now (result f64)))
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))

  ;; Calls env.log(x) once; returns nothing.
  (func (export "call_log") (param $x i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (call $log (local.get $x)))

  ;; Calls env.log(i) for i = 0 .. n-1; returns n (or 0 for n <= 0).
  (func (export "log_n") (param $n i32) (result i32)
    (local $i i32)
    (block $done
      (loop $again
        (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
        (call $log (local.get $i))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $again)))
    (global.set $calls (i32.add (global.get $calls) (local.get $i)))
    (local.get $i))

  ;; Returns env.now() unchanged.
  (func (export "call_now") (result f64)
    (call $now))

  ;; Returns env.now() - t (how long since t, in the host's unit).
  (func (export "elapsed_since") (param $t f64) (result f64)
    (f64.sub (call $now) (local.get $t)))

  ;; Number of env.log calls made so far.
  (func (export "log_calls") (result i32)
    (global.get $calls))

  (func (export "_health_check") (result i32)
    (i32.const 0)))
