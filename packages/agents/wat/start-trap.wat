;; start-trap: the start function executes `unreachable`, so instantiation
;; itself fails with a RuntimeError ("unreachable"). Compiling succeeds.
(module
  (memory (export "memory") 1)
  (func $start
    (unreachable))
  (start $start)

  (func (export "never") (result i32)
    (i32.const 1)))
