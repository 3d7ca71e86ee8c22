/*
 * MCS queue lock. Mirrors cohort::MCSLock::lock(), try_lock() and unlock() in
 * kernel/sync/mcs_lock.h: each CPU owns one node (index _pid); tail_ is exchanged to queue,
 * the predecessor links us and we spin on our own node's `waiting`; unlock hands over to the
 * linked successor, or CASes tail_ back to empty, or waits for a successor that has swapped
 * itself in but not yet linked.
 *
 * Checked: mutual exclusion (assert), deadlock freedom (invalid end states), FIFO as bounded
 * bypass after queueing (assert), and starvation freedom (ltl progress, weak fairness).
 * -DBROKEN sets `waiting` after linking to the predecessor instead of before queueing, so the
 * predecessor's handoff can be lost.
 */
#define N 3
#define NIL 255

byte tail = NIL;
byte next[N];
bool waiting[N];
byte in_cs = 0;
bool trying[N]; /* called lock(), not yet inside */
bool queued[N]; /* swapped into tail_, not yet inside */
bool inside[N];
byte bypass[N];

active [N] proctype cpu()
{
    byte prev;
    byte succ;
    byte j;
idle:
    if
    ::  /* lock(node) */
        trying[_pid] = true;
        next[_pid] = NIL;
#ifndef BROKEN
        waiting[_pid] = true;
#endif
        atomic { prev = tail; tail = _pid; queued[_pid] = true }; /* exchange */
        if
        :: prev != NIL ->
            next[prev] = _pid;
#ifdef BROKEN
            waiting[_pid] = true;
#endif
            (!waiting[_pid])
        :: else
        fi
    ::  /* try_lock(node): CAS tail_ from empty */
        next[_pid] = NIL;
        waiting[_pid] = false;
        if
        :: atomic { tail == NIL -> tail = _pid }
        :: atomic { tail != NIL -> skip }; goto idle
        fi
    fi;
    /* critical section */
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
    for (j : 0 .. N - 1) {
        assert(bypass[j] < N)
    }
    atomic { in_cs--; inside[_pid] = false };
    /* unlock(node) */
    succ = next[_pid];
    if
    :: succ == NIL ->
        if
        :: atomic { tail == _pid -> tail = NIL }; goto idle /* nobody queued */
        :: atomic { tail != _pid -> skip };
            (next[_pid] != NIL); /* a successor is between its exchange and its link */
            succ = next[_pid]
        fi
    :: else
    fi;
    waiting[succ] = false;
    goto idle
}

ltl progress { [] (trying[0] -> <> inside[0]) }
