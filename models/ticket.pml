/*
 * Ticket spinlock. Mirrors cohort::SpinLock::lock(), try_lock() and unlock() in
 * kernel/sync/spinlock.h (the fetch_add on next_, the spin on serving_, the CAS in try_lock,
 * the holder-only increment of serving_).
 *
 * Checked: mutual exclusion (assert), deadlock freedom (invalid end states), FIFO as bounded
 * bypass (a queued waiter is overtaken at most N-1 times: assert), and starvation freedom
 * (ltl fifo: a queued CPU 0 eventually gets in, under weak fairness).
 * -DBROKEN takes the ticket with a separate load and store instead of one fetch_add.
 */
#define N 3
#define M 4 /* tickets wrap modulo M > N, as the uint32_t counters wrap modulo 2^32 */

byte next = 0;
byte serving = 0;
byte in_cs = 0;
bool queued[N]; /* holds a ticket, not yet inside */
bool inside[N];
byte bypass[N]; /* entries by others while this CPU was queued */

active [N] proctype cpu()
{
    byte ticket;
    byte j;
idle:
    if
    ::  /* lock(): fetch_add on next_, then spin until serving_ reaches the ticket */
#ifdef BROKEN
        ticket = next;
        next = (ticket + 1) % M;
        queued[_pid] = true;
#else
        atomic { ticket = next; next = (next + 1) % M; queued[_pid] = true };
#endif
        (serving == ticket)
    ::  /* try_lock(): read serving_, then CAS next_ from it to it + 1. The read and the CAS
         * are one step here: between them the real counters would have to wrap all the way
         * round (2^32 acquisitions) for the CAS to succeed wrongly, which the small modulus M
         * of this model would turn into a spurious ABA. */
        if
        :: atomic { next == serving -> next = (next + 1) % M }
        :: atomic { next != serving -> skip }; goto idle /* CAS failed: returns false */
        fi
    fi;
    /* critical section */
    atomic {
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
    /* unlock(): only the holder writes serving_ */
    serving = (serving + 1) % M;
    goto idle
}

ltl fifo { [] (queued[0] -> <> inside[0]) }
