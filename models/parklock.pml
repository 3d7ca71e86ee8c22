/*
 * Park lock. Mirrors cohort::ParkLock in kernel/sync/park_lock.h and the park hooks of
 * kernel/sync/park.cc: a lock word (LOCKED, NOSTEAL, HEADPARKED, PENDING), an MCS queue whose
 * head competes for the word with CPUs that arrive (stealing), one CPU that may spin for the word
 * outside the queue while nobody queues (PENDING), waiters that park (halt) and are woken
 * by a flag plus an interrupt, and the bound on stealing: an acquisition that bypasses a
 * non-empty queue counts as a steal, and the MAXSTEAL-th sets NOSTEAL, after which only the
 * queue's head can take the lock (its acquisition resets the count).
 *
 * Parking: wait() sets parked[p], checks the flag and halts until an interrupt; wake() sets the
 * flag and interrupts a parked CPU (kick[p]). The halt is modelled as blocking until kick[p]:
 * the kernel makes the check-then-halt safe against an interrupt that lands between the two
 * (STI;HLT for the IPI, the NMI handler stepping over the HLT), which is what this assumes.
 * A kick that arrives when the CPU no longer halts stays pending here (a spurious later wake-up,
 * which every caller tolerates by re-checking).
 *
 * Spinning is a nondeterministic number of rounds: any waiter may park at any point where the
 * code may.
 *
 * Checked: mutual exclusion (assert), deadlock freedom (invalid end states: a CPU halted for
 * good is one), bounded bypass once queued (assert), and starvation freedom (ltl progress,
 * weak fairness). -DBROKEN makes unlock forget to wake a parked head, so the head can sleep
 * forever with the lock free. The direct handover to a running head is in: an unlocker may
 * choose it whenever a head exists and has not marked itself parked.
 */
/* Two CPUs: every path, exhaustively (one holder, one queued head, stealing, parking both
   ways). Three CPUs (a queue of two, the successor's wake-up) exceed 10^8 states; the host
   tests under ThreadSanitizer and the kernel's torture cover that path. */
#define N 2
#define NIL 255
#define LOCKED 1
#define NOSTEAL 2
#define HEADPARKED 4
#define PENDING 8
#define MAXSTEAL 1 /* the kernel's is larger; the bound's form is the same */
#define PENDSPINS 2 /* the pending CPU's spin is bounded (kSpins): then it queues */

byte word = 0;
byte tail = NIL;
byte headp = NIL; /* head_: the queue's head, for the unlocker's wake */
byte steals = 0;  /* steals_: acquisitions past a queue since its head last acquired */
byte next[N];
bool head[N];   /* this waiter leads the queue */
bool kicked[N]; /* the unlocker says: released */
bool granted[N]; /* the unlocker handed it the lock (the word stays LOCKED) */
bool parked[N];
bool kick[N];   /* an interrupt pending for this CPU */
byte in_cs = 0;
bool trying[N];
bool queued[N]; /* in the MCS queue, not yet inside */
bool inside[N];
byte bypass[N]; /* acquisitions by others since it queued */

/* wait(): park until `flag` is set */
inline park(flag) {
    parked[_pid] = true;
    if
    :: flag -> skip
    :: else -> (kick[_pid]); kick[_pid] = false
    fi;
    parked[_pid] = false
}

/* count_steal(), by a CPU that took the word without queueing: a steal if anyone queues,
   counted by the holder, so the bound holds even when the head is not running to see it */
inline count_steal() {
    if
    :: tail != NIL ->
        steals++;
        if
        :: steals >= MAXSTEAL -> word = word | NOSTEAL; steals = MAXSTEAL
        :: else
        fi
    :: else
    fi
}

/* wake(w, flag) */
inline wake(w, flag) {
    flag = true;
    if
    :: parked[w] -> kick[w] = true
    :: else
    fi
}

active [N] proctype cpu()
{
    byte prev;
    byte succ;
    byte old;
    byte j;
idle:
    /* dead locals cleared: they would multiply the states for nothing */
    atomic { prev = 0; succ = 0; old = 0; j = 0 };
    trying[_pid] = true;
    if
    :: atomic { word == 0 -> word = LOCKED };
        count_steal();
        goto acquired
    :: atomic { word != 0 -> skip }
    fi;
    /* lock_pending: only while nobody queues, nobody else is pending and stealing is allowed;
       the tail is read before the word's compare-and-swap, not with it */
    if
    :: tail == NIL ->
        if
        :: atomic { (word & (PENDING | NOSTEAL)) == 0 -> word = word | PENDING };
            do
            :: atomic { (word & (LOCKED | NOSTEAL)) == 0 -> word = (word & ~PENDING) | LOCKED };
                count_steal();
                goto acquired
            :: (word & NOSTEAL) != 0 -> break
            :: (word & LOCKED) != 0 && j < PENDSPINS -> j++ /* spin on */
            :: (word & LOCKED) != 0 -> break /* spun its rounds: queue */
            od;
            j = 0;
            word = word & ~PENDING
        :: atomic { (word & (PENDING | NOSTEAL)) != 0 -> skip }
        fi
    :: tail != NIL
    fi;
    /* lock_slow */
    next[_pid] = NIL;
    head[_pid] = false;
    atomic { prev = tail; tail = _pid; queued[_pid] = true; bypass[_pid] = 0 };
    if
    :: prev != NIL ->
        next[prev] = _pid;
        do
        :: head[_pid] -> break
        :: !head[_pid] -> park(head[_pid])
        od
    :: else
    fi;
    granted[_pid] = false;
    headp = _pid;
head_loop:
    if
    :: granted[_pid] -> goto acquired_granted
    :: atomic { (word & LOCKED) == 0 -> word = (word & PENDING) | LOCKED }; goto acquired_slow
    :: !granted[_pid] && (word & LOCKED) != 0 -> /* the code looks at the grant first */
        if
        :: goto head_loop /* spin on */
        :: kicked[_pid] = false;
           if
           :: granted[_pid] -> goto acquired_granted
           :: else
           fi;
           if
           :: atomic { (word & LOCKED) != 0 -> word = word | HEADPARKED };
              do
              :: kicked[_pid] || granted[_pid] -> break
              :: !kicked[_pid] && !granted[_pid] -> park(kicked[_pid])
              od
           :: atomic { (word & LOCKED) == 0 -> skip }
           fi;
           goto head_loop
        fi
    fi;
acquired_granted:
    word = word & ~(HEADPARKED | NOSTEAL);
acquired_slow:
    headp = NIL;
    steals = 0;
    /* pass the head of the queue on */
    if
    :: atomic { tail == _pid -> tail = NIL }
    :: atomic { tail != _pid -> skip };
        (next[_pid] != NIL);
        succ = next[_pid];
        wake(succ, head[succ])
    fi;
    goto acquired;
acquired:
    atomic {
        trying[_pid] = false;
        queued[_pid] = false;
        inside[_pid] = true;
        in_cs++;
        bypass[_pid] = 0;
        for (j : 0 .. N - 1) {
            if
            :: queued[j] -> bypass[j]++
            :: else
            fi
        }
    }
    assert(in_cs == 1);
    /* Each waiter ahead in the queue leads it once: at most MAXSTEAL steals, then its own
       acquisition; then MAXSTEAL steals before ours. With N CPUs: (N - 1) * (MAXSTEAL + 1). */
    for (j : 0 .. N - 1) {
        assert(bypass[j] <= (N - 1) * (MAXSTEAL + 1))
    }
    atomic { in_cs--; inside[_pid] = false };
    /* unlock: hand over to a head that looks running (freshness is a guess: either way) */
    succ = headp;
    if
    :: succ != NIL && (word & HEADPARKED) == 0 ->
        granted[succ] = true;
        wake(succ, kicked[succ]);
        goto idle
    :: true
    fi;
    atomic { old = word; word = word & ~(LOCKED | HEADPARKED) };
#ifndef BROKEN
    if
    :: (old & HEADPARKED) != 0 -> succ = headp; wake(succ, kicked[succ])
    :: else
    fi;
#endif
    goto idle
}

ltl progress { [] (trying[0] -> <> inside[0]) }
