/*
 * Writer-preferring reader-writer lock. Mirrors cohort::RwLock::read_lock(), try_read(),
 * read_unlock(), write_lock(), try_write() and write_unlock() in kernel/sync/rwlock.h. The C++
 * packs writer / waiting writers / readers into one word and changes it with CAS loops; here
 * each successful CAS is one guarded atomic step on the three fields (a failed CAS just
 * retries, which the guard's blocking models).
 *
 * Checked: mutual exclusion between a writer and anyone else (assert), deadlock freedom
 * (invalid end states), and writer preference as starvation freedom for a writer against a
 * stream of readers (ltl writer_progress, weak fairness; LIVENESS configuration: one writer,
 * as writers are not FIFO among themselves and readers are not protected from writers).
 * -DBROKEN lets readers in while a writer is waiting but not yet inside, forgetting to check
 * that the writer bit itself is clear.
 */
#define R 2
#ifdef LIVENESS
#define W 1
#else
#define W 2
#endif

bool writer = false;
byte waiting = 0;
byte readers = 0;
byte in_read = 0;
byte in_write = 0;
bool wwait = false; /* writer 0 announced itself and is not yet inside */
bool win = false;   /* writer 0 is inside */

active [R] proctype reader()
{
idle:
    if
    :: /* read_lock(): CAS readers + 1 when no writer holds or waits */
#ifdef BROKEN
        atomic { waiting == 0 -> readers++ }
#else
        atomic { !writer && waiting == 0 -> readers++ }
#endif
    :: /* try_read() */
        if
        :: atomic { !writer && waiting == 0 -> readers++ }
        :: atomic { writer || waiting > 0 -> skip }; goto idle
        fi
    fi;
    in_read++;
    assert(in_write == 0);
    in_read--;
    readers--; /* read_unlock(): fetch_sub */
    goto idle
}

active [W] proctype writer_cpu()
{
    byte me = _pid - R;
idle:
    if
    :: /* write_lock(): announce (fetch_add), then CAS waiting - 1 | writer once free */
        atomic { waiting++; if :: me == 0 -> wwait = true :: else fi };
        atomic { !writer && readers == 0 -> waiting--; writer = true;
                 if :: me == 0 -> wwait = false; win = true :: else fi }
    :: /* try_write(): may overtake waiting writers */
        if
        :: atomic { !writer && readers == 0 -> writer = true }
        :: atomic { writer || readers > 0 -> skip }; goto idle
        fi
    fi;
    in_write++;
    assert(in_write == 1 && in_read == 0);
    in_write--;
    atomic { writer = false; win = false }; /* write_unlock(): fetch_and */
    goto idle
}

ltl writer_progress { [] (wwait -> <> win) }
