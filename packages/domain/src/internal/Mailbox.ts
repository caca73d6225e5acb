/**
 * `Mailbox`: an agent's one-permit lock (one invocation or lifecycle call at
 * a time per agent, DESIGN.md "The aggregate"), leaner than an Effect
 * `Semaphore` of one permit on the path every worker-engine call takes.
 *
 * - **Free**: the permit is taken in the step that runs the effect (one
 *   `withFiber`, no scheduler round, no `uninterruptibleMask`); the release is
 *   a synchronous finalizer on the effect's exit — success, failure, defect
 *   or interruption alike (an `onExitPrimitive` frame that is not marked
 *   interruptible: an interruption never skips it).
 * - **Held**: the caller queues (FIFO). A release hands the permit straight
 *   to the first waiter (no barging: a caller arriving after the release
 *   queues behind it) and resumes that waiter in a task of its own
 *   dispatcher, as `Semaphore` does, so a chain of waiters never nests on
 *   the stack.
 * - **Interruption**: the release finalizer is pushed *before* the permit is
 *   taken, so no interruption can fall between taking and the finalizer
 *   (a fiber interrupted before it took the permit releases nothing). A
 *   waiter interrupted in the queue leaves it without taking the permit; one
 *   interrupted after the permit was handed to it but before it ran passes
 *   it on to the next waiter. A holder interrupted while it runs releases it.
 *
 * Not re-entrant, like a `Semaphore` of one permit: a fiber that holds the
 * mailbox and asks for it again waits for itself (`withPermitIfAvailable`
 * answers `None`).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Option from "effect/Option"
import type { SchedulerDispatcher } from "effect/Scheduler"

/** A run's place: not yet at the mailbox, waiting in its queue, holding the permit, finished. */
const NEW = 0
const QUEUED = 1
const HELD = 2
const DONE = 3

/**
 * One run of a `withPermit` effect (an effect may run several times: a
 * ticket per run). A plain object, not a class instance: class fields
 * compiled by esbuild (the worker bundle, tsx) cost ≈ 0.4 µs per ticket.
 */
interface Ticket {
  state: typeof NEW | typeof QUEUED | typeof HELD | typeof DONE
  next: Ticket | undefined
  /** Resumes the queued fiber (set while it waits). */
  resume: ((effect: Effect.Effect<void>) => void) | undefined
  /** The queued fiber's dispatcher, where its wake-up runs. */
  dispatcher: SchedulerDispatcher | undefined
}

const newTicket = (): Ticket => ({ state: NEW, next: undefined, resume: undefined, dispatcher: undefined })

/**
 * One permit with a FIFO queue; see the module doc. `held` and `waiting`
 * read its state (tests, diagnostics); `withPermit` / `withPermitIfAvailable`
 * are the two ways in.
 */
export class Mailbox {
  private holder: Ticket | undefined = undefined
  private head: Ticket | undefined = undefined
  private tail: Ticket | undefined = undefined
  private queued = 0

  /** Whether a run holds the permit (or it was handed to a waiter that has not run yet). */
  get held(): boolean {
    return this.holder !== undefined
  }

  /** Runs waiting in the queue. */
  get waiting(): number {
    return this.queued
  }

  /**
   * Runs `effect` holding the permit: now when it is free, else after the
   * runs queued before it (FIFO). The permit is released when `effect`
   * exits, however it exits. Interrupting a waiting run removes it from the
   * queue.
   */
  withPermit<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.suspend(() => {
      const ticket = newTicket()
      return Effect.onExitPrimitive(
        Effect.withFiber((fiber) => this.enter(ticket, effect, fiber)),
        () => this.exit(ticket)
      )
    })
  }

  /**
   * Runs `effect` holding the permit only when it is free (and no run waits)
   * at the moment this effect runs: `Some` of its result; `None` without
   * running it otherwise.
   */
  withPermitIfAvailable<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<Option.Option<A>, E, R> {
    const some = Effect.asSome(effect)
    return Effect.suspend(() => {
      const ticket = newTicket()
      return Effect.onExitPrimitive(
        Effect.suspend(() => {
          if (this.holder !== undefined) return Effect.succeedNone
          this.holder = ticket
          ticket.state = HELD
          return some
        }),
        () => this.exit(ticket)
      )
    })
  }

  /**
   * For a run that already started in the caller's synchronous step while
   * the permit was free (the caller read `held` false in this same step):
   * takes the permit now and returns the effect that holds it until
   * `effect` exits, however it exits — `withPermit` without the queue, for
   * a call whose first part ran before any effect (a worker call sent at
   * once, `Invocation.invokeStarted`). Should the calling fiber never run
   * the returned effect (interrupted at a scheduler yield before it), the
   * permit is released when that fiber ends. Throws when the permit is
   * held: a caller bug.
   */
  holdFrom<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    if (this.holder !== undefined) throw new Error("Mailbox.holdFrom: the permit is held")
    const ticket = newTicket()
    this.holder = ticket
    ticket.state = HELD
    const fiber = Fiber.getCurrent()
    const unobserve = fiber?.addObserver(() => this.exit(ticket))
    return Effect.onExitPrimitive(
      unobserve === undefined
        ? effect
        : Effect.suspend(() => {
            unobserve()
            return effect
          }),
      () => this.exit(ticket)
    )
  }

  /** Takes the permit for `ticket` now, or queues it and waits for the hand-over. */
  private enter<A, E, R>(
    ticket: Ticket,
    effect: Effect.Effect<A, E, R>,
    fiber: Fiber.Fiber<unknown, unknown>
  ): Effect.Effect<A, E, R> {
    // the queue is empty whenever no run holds the permit: a release hands it to the first waiter
    if (this.holder === undefined) {
      this.holder = ticket
      ticket.state = HELD
      return effect
    }
    ticket.state = QUEUED
    ticket.dispatcher = fiber.currentDispatcher
    if (this.tail === undefined) this.head = ticket
    else this.tail.next = ticket
    this.tail = ticket
    this.queued++
    return Effect.flatMap(
      Effect.callback<void>((resume) => {
        // handed over between `enter` and here (the fiber yielded): go on now
        if (ticket.state === HELD) resume(Effect.void)
        else ticket.resume = resume
      }),
      () => effect
    )
  }

  /** A run's exit finalizer: gives back or passes on the permit, or leaves the queue. */
  private exit(ticket: Ticket): undefined {
    const state = ticket.state
    ticket.state = DONE
    if (state === HELD) this.release()
    else if (state === QUEUED) this.leave(ticket)
    return undefined
  }

  /** Gives the permit back, or hands it to the first waiter and wakes it (in a task of its dispatcher). */
  private release(): void {
    const next = this.head
    if (next === undefined) {
      this.holder = undefined
      return
    }
    this.dequeue(next)
    this.holder = next
    next.state = HELD
    ;(next.dispatcher as SchedulerDispatcher).scheduleTask(() => {
      // still waiting for this permit (not interrupted meanwhile, which passed it on): resume
      const resume = next.resume
      if (next.state === HELD && resume !== undefined) {
        next.resume = undefined
        resume(Effect.void)
      }
    }, 0)
  }

  /** Removes a waiter that was interrupted in the queue (it never held the permit). */
  private leave(ticket: Ticket): void {
    let previous: Ticket | undefined = undefined
    let at = this.head
    while (at !== undefined && at !== ticket) {
      previous = at
      at = at.next
    }
    if (at === undefined) return
    if (previous === undefined) this.head = ticket.next
    else previous.next = ticket.next
    if (this.tail === ticket) this.tail = previous
    ticket.next = undefined
    this.queued--
  }

  private dequeue(ticket: Ticket): void {
    this.head = ticket.next
    if (this.head === undefined) this.tail = undefined
    ticket.next = undefined
    this.queued--
  }
}
