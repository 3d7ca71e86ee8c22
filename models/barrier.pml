/*
 * Generation barrier. Mirrors cohort::Barrier::wait() in kernel/sync/barrier.h: read the
 * generation, fetch_add on arrived_; the last arrival resets arrived_ and then bumps the
 * generation (and returns true); the others spin until the generation moves.
 *
 * Checked: nobody leaves a round before everyone has arrived in it, nobody gets more than one
 * round ahead, exactly the last arrival is serial, the counter never exceeds N (asserts);
 * deadlock freedom (invalid end states); every wait returns (ltl progress, weak fairness).
 * -DBROKEN bumps the generation before resetting arrived_, so a fast participant's next
 * arrival can be wiped out.
 */
#define N 3
#define K 4 /* generation and round counters wrap modulo K, as the uint32_t wraps */

byte arrived = 0;
byte generation = 0;
byte rounds[N]; /* completed arrivals per participant, modulo K */
bool in_wait[N];

active [N] proctype cpu()
{
    byte gen;
    byte a;
    byte j;
    byte d;
idle:
    /* wait() */
    atomic { in_wait[_pid] = true; gen = generation };
    atomic { a = arrived; arrived++; rounds[_pid] = (rounds[_pid] + 1) % K };
    assert(a < N);
    if
    :: a + 1 == N ->
        /* serial: everyone has arrived in this round, nobody is ahead */
        for (j : 0 .. N - 1) {
            assert(rounds[j] == rounds[_pid])
        }
#ifdef BROKEN
        generation = (gen + 1) % K;
        arrived = 0;
#else
        arrived = 0;
        generation = (gen + 1) % K;
#endif
    :: else ->
        (generation != gen)
    fi;
    /* leaving: everyone arrived in this round; some may already be in the next one */
    for (j : 0 .. N - 1) {
        d = (rounds[j] + K - rounds[_pid]) % K;
        assert(d == 0 || d == 1)
    }
    in_wait[_pid] = false;
    goto idle
}

ltl progress { [] (in_wait[0] -> <> !in_wait[0]) }
