/* Self-test firmware of an exported policy, for qemu-system-arm -M netduinoplus2 -icount shift=0.

   Runs the golden vectors embedded in policy.c (gs_policy_selftest), a recurrence of GS_TEST_STEPS
   gs_policy_step calls feeding back its own state (message slots past neighbour_count hold NaN, which must
   not reach any output), and one step with every neighbour slot filled (with a message encoder, also its
   message); measures the instructions of that step (and of the encoder) and the step's stack use, and prints
   one line:
       max_abs_error=<float> golden=<float> recurrence=<float> all_slots=<float> instructions_per_step=<int>
       instructions_per_message=<int> stack_bytes=<int>
   Expected outputs come with the export (selftest_data.h). Instructions: QEMU's TIM2 counts at 1 GHz of
   virtual time and -icount shift=0 advances virtual time 1 ns per instruction, so the counter difference
   across a call is its instruction count plus the call's fixed overhead, which a call of gs_empty_step (two
   instructions) measures. On silicon the same counter counts timer ticks instead. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "policy.h"
#include "selftest_data.h"

/* -DGS_SELFTEST_COUNT_ONLY=1 runs the timed steps alone: short enough to trace instruction by instruction */
#ifndef GS_SELFTEST_COUNT_ONLY
#define GS_SELFTEST_COUNT_ONLY 0
#endif

#define GS_TIM2_CNT (*(volatile uint32_t *)0x40000024u)
#define GS_STACK_PAINT 0xC0FFEE11u

extern uint32_t _stack_limit[];

typedef int (*gs_step_function)(const float *, const float *, const float *, int, int, float *, float *);

/* return in exactly two instructions: the yardsticks of the timed calls' own overhead */
int gs_empty_step(const float *, const float *, const float *, int, int, float *, float *);
void gs_empty_message(const float *, float *);
__asm__(".text\n\t.align 1\n\t.global gs_empty_step\n\t.type gs_empty_step, %function\n\t.thumb_func\n"
        "gs_empty_step:\n\tmovs r0, #0\n\tbx lr\n\t.size gs_empty_step, .-gs_empty_step\n"
        "\t.align 1\n\t.global gs_empty_message\n\t.type gs_empty_message, %function\n\t.thumb_func\n"
        "gs_empty_message:\n\tnop\n\tbx lr\n\t.size gs_empty_message, .-gs_empty_message\n");
#define GS_EMPTY_INSTRUCTIONS 2u

static float gs_logits[GS_NUM_ACTIONS];
static float gs_state[GS_STATE_SIZE > 0 ? GS_STATE_SIZE : 1];
static float gs_next[GS_STATE_SIZE > 0 ? GS_STATE_SIZE : 1];

/* largest |a - b|; any NaN makes it infinite */
static float gs_max_error(const float *a, const float *b, int n, float worst)
{
    for (int i = 0; i < n; ++i) {
        const float error = fabsf(a[i] - b[i]);
        if (isnan(error)) return INFINITY;
        if (error > worst) worst = error;
    }
    return worst;
}

__attribute__((noipa)) static uint32_t gs_timed_step(gs_step_function step)
{
    const uint32_t start = GS_TIM2_CNT;
    step(gs_full_obs, gs_full_state, gs_full_messages, GS_MAX_NEIGHBOURS, gs_full_reset, gs_logits, gs_next);
    return GS_TIM2_CNT - start;
}

typedef void (*gs_message_function)(const float *, float *);
static float gs_message[GS_MESSAGE_SIZE > 0 ? GS_MESSAGE_SIZE : 1];

__attribute__((noipa)) static uint32_t gs_timed_message(gs_message_function encode)
{
    const uint32_t start = GS_TIM2_CNT;
    encode(gs_full_obs, gs_message);
    return GS_TIM2_CNT - start;
}

static void gs_start_counter(void)
{
    *(volatile uint32_t *)0x40023840u |= 1u;          /* RCC_APB1ENR: TIM2 clock on */
    *(volatile uint32_t *)0x40000028u = 0u;           /* TIM2_PSC: no prescaler */
    *(volatile uint32_t *)0x4000002Cu = 0xFFFFFFFFu;  /* TIM2_ARR: the full 32-bit range */
    *(volatile uint32_t *)0x40000014u = 1u;           /* TIM2_EGR: load PSC and ARR */
    *(volatile uint32_t *)0x40000000u = 1u;           /* TIM2_CR1: count */
}

/* bytes of stack below this frame that one every-slot step touches (painted, run, scanned) */
__attribute__((noipa)) static unsigned long gs_step_stack_bytes(void)
{
    uint32_t *sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    uint32_t *word = _stack_limit;
    while (word < sp - 16) *word++ = GS_STACK_PAINT;
    gs_timed_step(gs_policy_step);
    for (word = _stack_limit; word < sp && *word == GS_STACK_PAINT; ++word) {}
    return (unsigned long)((char *)sp - (char *)word);
}

static float gs_recurrence_error(void)
{
    float worst = 0.0f;
    for (int t = 0; t < GS_TEST_STEPS; ++t) {
        gs_policy_step(gs_test_obs + t * GS_OBS_SIZE, gs_state,
                       gs_test_messages + t * GS_MAX_NEIGHBOURS * GS_MESSAGE_SIZE, gs_test_counts[t],
                       gs_test_resets[t], gs_logits, gs_next);
        worst = gs_max_error(gs_logits, gs_test_logits + t * GS_NUM_ACTIONS, GS_NUM_ACTIONS, worst);
        worst = gs_max_error(gs_next, gs_test_states + t * GS_STATE_SIZE, GS_STATE_SIZE, worst);
        for (int i = 0; i < GS_STATE_SIZE; ++i) gs_state[i] = gs_next[i];
    }
    return worst;
}

int main(void)
{
    gs_start_counter();
    const float golden = GS_SELFTEST_COUNT_ONLY ? 0.0f : gs_policy_selftest();
    const float recurrence = GS_SELFTEST_COUNT_ONLY ? 0.0f : gs_recurrence_error();
    const uint32_t overhead = gs_timed_step(gs_empty_step);
    const uint32_t elapsed = gs_timed_step(gs_policy_step);
    float all_slots = gs_max_error(gs_logits, gs_full_logits, GS_NUM_ACTIONS, 0.0f);
    all_slots = gs_max_error(gs_next, gs_full_new_state, GS_STATE_SIZE, all_slots);
    unsigned long message_instructions = 0;
#ifdef GS_MESSAGE_ENCODER
    const uint32_t message_overhead = gs_timed_message(gs_empty_message);
    message_instructions = gs_timed_message(gs_policy_message) - message_overhead + GS_EMPTY_INSTRUCTIONS;
    all_slots = gs_max_error(gs_message, gs_full_message, GS_MESSAGE_SIZE, all_slots);
#else
    (void)gs_timed_message;
#endif
    const unsigned long stack = GS_SELFTEST_COUNT_ONLY ? 0ul : gs_step_stack_bytes();
    const float worst = fmaxf(fmaxf(golden, recurrence), all_slots); /* each is infinite for a NaN */
    printf("max_abs_error=%.9g golden=%.9g recurrence=%.9g all_slots=%.9g instructions_per_step=%lu "
           "instructions_per_message=%lu stack_bytes=%lu\n",
           (double)worst, (double)golden, (double)recurrence, (double)all_slots,
           (unsigned long)(elapsed - overhead + GS_EMPTY_INSTRUCTIONS), message_instructions, stack);
    return 0;
}
