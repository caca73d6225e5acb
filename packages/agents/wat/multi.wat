;; multi: multi-value results and floating point parameters/results.
(module
  ;; Returns its arguments in the other order: (i64, i32).
  (func (export "swap") (param $a i32) (param $b i64) (result i64 i32)
    (local.get $b)
    (local.get $a))

  ;; Quotient and remainder (signed): (a / b, a % b). Traps on b = 0.
  (func (export "divmod") (param $a i32) (param $b i32) (result i32 i32)
    (i32.div_s (local.get $a) (local.get $b))
    (i32.rem_s (local.get $a) (local.get $b)))

  ;; f32 addition.
  (func (export "add_f32") (param $a f32) (param $b f32) (result f32)
    (f32.add (local.get $a) (local.get $b)))

  ;; f64 multiplication.
  (func (export "mul_f64") (param $a f64) (param $b f64) (result f64)
    (f64.mul (local.get $a) (local.get $b)))

  ;; f64 square root (NaN for negative input).
  (func (export "sqrt_f64") (param $x f64) (result f64)
    (f64.sqrt (local.get $x)))

  ;; Returns one value of every numeric type: (i32 7, i64 -8, f32 1.5, f64 2.25).
  (func (export "all_types") (result i32 i64 f32 f64)
    (i32.const 7)
    (i64.const -8)
    (f32.const 1.5)
    (f64.const 2.25))

  (func (export "_health_check") (result i32)
    (i32.const 0)))
