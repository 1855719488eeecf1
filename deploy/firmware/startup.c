/* Minimal start-up for the STM32F405 self-test firmware: vector table, .data/.bss set-up, FPU on, main.

   Built with the policy by `gridswarm export` (deploy/mcu.py) for qemu-system-arm -M netduinoplus2; output
   goes through semihosting (newlib's rdimon), so the program ends with exit() instead of looping. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t _data_load[], _data_start[], _data_end[], _bss_start[], _bss_end[], _stack_top[];
extern void initialise_monitor_handles(void);
extern int main(void);

void gs_reset_handler(void);
static void gs_fault_handler(void);

/* newlib's exit() runs the _fini hook of crti.o, which -nostartfiles leaves out */
void _init(void);
void _fini(void);
void _init(void) {}
void _fini(void) {}

typedef void (*gs_vector)(void);

/* Initial stack pointer, reset, then NMI, HardFault, MemManage, BusFault, UsageFault, 4 reserved, SVCall,
   DebugMonitor, reserved, PendSV, SysTick: every exception stops in the fault handler. */
__attribute__((section(".isr_vector"), used)) static const gs_vector gs_vectors[16] = {
    (gs_vector)_stack_top, gs_reset_handler, gs_fault_handler, gs_fault_handler, gs_fault_handler,
    gs_fault_handler, gs_fault_handler, 0, 0, 0, 0, gs_fault_handler, gs_fault_handler, 0,
    gs_fault_handler, gs_fault_handler,
};

void gs_reset_handler(void)
{
    uint32_t *to = _data_start;
    const uint32_t *from = _data_load;
    while (to < _data_end) *to++ = *from++;
    for (to = _bss_start; to < _bss_end;) *to++ = 0;
    /* CPACR: full access to CP10 and CP11 (the FPU) before the first float instruction */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm volatile("dsb\n\tisb" ::: "memory");
    initialise_monitor_handles();
    exit(main());
}

static void gs_fault_handler(void)
{
    exit(99); /* a fault ends the emulator run with status 99 instead of hanging it */
}
