//! The board support the sensor needs, for QEMU's `mps2-an385` (Cortex-M3 at 25 MHz): UART0 as
//! an `embedded-io` byte stream, a 1 ms tick, semihosting output and exit, stack painting.
//! On real hardware only this file changes.

use core::ptr::{addr_of, read_volatile, write_volatile};
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use cortex_m_semihosting::{debug, hio};
use embedded_io::{ErrorType, Read, ReadReady, Write};

/// CMSDK APB UART0 (AN385 memory map; QEMU's first `-serial`).
const UART0: usize = 0x4000_4000;
const DATA: usize = UART0;
const STATE: usize = UART0 + 0x04;
const CTRL: usize = UART0 + 0x08;
const BAUDDIV: usize = UART0 + 0x10;
const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const CTRL_TX_EN: u32 = 1 << 0;
const CTRL_RX_EN: u32 = 1 << 1;

const SYSCLK_HZ: u32 = 25_000_000;
const PAINT: u32 = 0xACE0_BA5E;

fn reg_read(addr: usize) -> u32 {
    // SAFETY: a UART register of this board, read as the peripheral expects.
    unsafe { read_volatile(addr as *const u32) }
}

fn reg_write(addr: usize, value: u32) {
    // SAFETY: a UART register of this board, written as the peripheral expects.
    unsafe { write_volatile(addr as *mut u32, value) }
}

/// UART0, polled: the transport the MQTT client runs over.
#[derive(Debug)]
pub struct Uart(());

impl ErrorType for Uart {
    type Error = core::convert::Infallible;
}

impl ReadReady for Uart {
    fn read_ready(&mut self) -> Result<bool, Self::Error> {
        Ok(reg_read(STATE) & STATE_RX_FULL != 0)
    }
}

impl Read for Uart {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let mut n = 0;
        for slot in buf.iter_mut() {
            if reg_read(STATE) & STATE_RX_FULL == 0 {
                if n > 0 {
                    break;
                }
                while reg_read(STATE) & STATE_RX_FULL == 0 {}
            }
            *slot = reg_read(DATA) as u8;
            n += 1;
        }
        Ok(n)
    }
}

impl Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        for &b in buf {
            while reg_read(STATE) & STATE_TX_FULL != 0 {}
            reg_write(DATA, u32::from(b));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

static TICKS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// Milliseconds since boot, wrapping (the client widens it).
#[derive(Debug, Clone, Copy)]
pub struct Clock(());

impl Clock {
    pub fn now(&self) -> u32 {
        TICKS.load(Ordering::Relaxed)
    }

    /// Sleep until the next interrupt (the 1 ms tick at the latest).
    pub fn idle(&self) {
        cortex_m::asm::wfi();
    }
}

/// What the application gets from the board.
pub struct Board {
    pub uart: Uart,
    pub clock: Clock,
}

unsafe extern "C" {
    /// cortex-m-rt: the end of the statics (start of the unused RAM below the stack).
    static __sheap: u32;
    /// cortex-m-rt: the initial stack pointer (top of RAM).
    static _stack_start: u32;
}

fn stack_bounds() -> (usize, usize) {
    (addr_of!(__sheap) as usize, addr_of!(_stack_start) as usize)
}

/// Paint the free stack, start the 1 ms tick, enable UART0.
pub fn init() -> Board {
    let (bottom, _) = stack_bounds();
    let sp = cortex_m::register::msp::read() as usize;
    let mut p = bottom;
    while p + 64 < sp {
        // SAFETY: RAM between the statics and (well below) the current stack pointer: unused.
        unsafe { write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
    let mut core = cortex_m::Peripherals::take().unwrap_or_else(|| fail("peripherals taken"));
    core.SYST.set_clock_source(SystClkSource::Core);
    core.SYST.set_reload(SYSCLK_HZ / 1000 - 1);
    core.SYST.clear_current();
    core.SYST.enable_interrupt();
    core.SYST.enable_counter();
    reg_write(BAUDDIV, 16);
    reg_write(CTRL, CTRL_TX_EN | CTRL_RX_EN);
    Board {
        uart: Uart(()),
        clock: Clock(()),
    }
}

/// Bytes of stack ever used: the distance from the top of RAM to the lowest unpainted word.
pub fn peak_stack() -> usize {
    let (bottom, top) = stack_bounds();
    let mut p = bottom;
    // SAFETY: reading RAM between the statics and the top of the stack.
    while p < top && unsafe { read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    top - p
}

fn print(parts: &[&[u8]]) {
    if let Ok(mut out) = hio::hstdout() {
        for part in parts {
            let _ = out.write_all(part);
        }
    }
}

/// `n` in decimal, without core::fmt.
fn decimal(mut n: usize, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 || i == 0 {
            return &buf[i..];
        }
    }
}

/// Report how it went (and the peak stack) on the host's stdout, then exit QEMU: status 0
/// after `Ok`, 1 otherwise.
pub fn finish(outcome: Result<(), &'static str>) -> ! {
    let mut digits = [0; 10];
    let stack = decimal(peak_stack(), &mut digits);
    match outcome {
        Ok(()) => {
            print(&[
                b"wren-qemu-sensor: scenario complete; peak stack ",
                stack,
                b" bytes\n",
            ]);
            debug::exit(debug::EXIT_SUCCESS);
        }
        Err(why) => {
            print(&[b"wren-qemu-sensor: FAILED: ", why.as_bytes(), b"\n"]);
            debug::exit(debug::EXIT_FAILURE);
        }
    }
    // Only reached outside QEMU (no debugger to exit to).
    loop {
        cortex_m::asm::wfi();
    }
}

pub fn fail(why: &'static str) -> ! {
    finish(Err(why))
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    fail("panic")
}
