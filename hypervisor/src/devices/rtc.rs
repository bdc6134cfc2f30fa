//! The MC146818 CMOS/RTC on ports 0x70 (index) and 0x71 (data), with its
//! interrupt on GSI 8.
//!
//! vm-superio has no CMOS device (only the ARM PL031 RTC), so this one is
//! written here, after the MC146818A datasheet and what Linux's `rtc_cmos`
//! and `mc146818_get_time` use:
//!
//! - the time registers show the host's UTC time plus an offset the guest
//!   sets through status B's SET bit (the host clock is never touched), in
//!   BCD or binary and 24- or 12-hour mode as status B says;
//! - status A never shows an update in progress (the time is computed on
//!   every read, so there is no unstable window), which keeps Linux's probe
//!   and `mach_get_cmos_time` to a handful of exits;
//! - status C's flags follow the clock: UF at every second, AF when the
//!   alarm registers (hours, minutes, seconds; 0xc0-0xff is "any") match,
//!   PF at the rate in status A; reading C clears them; IRQF and an edge on
//!   the interrupt line when a flag is set whose enable bit (UIE, AIE, PIE)
//!   is on. A timer thread raises the edges on time (only while an
//!   interrupt is enabled); flags the guest polls for are brought up to
//!   date on the read itself;
//! - status D says the time is valid; the other 114 bytes are battery-backed
//!   RAM the guest may use (Linux exposes them as `nvram`).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::serial::IrqLine;
use super::{DeviceError, IoAction, PortDevice};

/// Index port; the data port follows it.
pub const RTC_BASE: u16 = 0x70;
/// Index and data.
pub const RTC_LEN: u16 = 2;
/// The RTC's interrupt (ISA IRQ 8), a GSI of the in-kernel IOAPIC.
pub const RTC_GSI: u32 = 8;

// Register numbers (MC146818 datasheet).
const REG_SECONDS: u8 = 0x00;
const REG_SECONDS_ALARM: u8 = 0x01;
const REG_MINUTES: u8 = 0x02;
const REG_MINUTES_ALARM: u8 = 0x03;
const REG_HOURS: u8 = 0x04;
const REG_HOURS_ALARM: u8 = 0x05;
const REG_WEEKDAY: u8 = 0x06;
const REG_DAY: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_STATUS_A: u8 = 0x0a;
const REG_STATUS_B: u8 = 0x0b;
const REG_STATUS_C: u8 = 0x0c;
const REG_STATUS_D: u8 = 0x0d;
/// The century (IBM PC convention), named by the FADT's `CENTURY` field.
pub const REG_CENTURY: u8 = 0x32;

/// The RTC's DSDT node: `PNP0B00` at [`RTC_BASE`] on GSI [`RTC_GSI`].
pub fn aml() -> Vec<u8> {
    pvh_acpi::isa::rtc(RTC_BASE, RTC_LEN as u8, RTC_GSI)
}

/// Status A at reset: 32.768 kHz time base, 1024 Hz periodic rate.
const STATUS_A_RESET: u8 = 0x26;
/// Status A: update in progress (never set here).
const A_UIP: u8 = 0x80;
/// Status A: the periodic rate select bits.
const A_RATE: u8 = 0x0f;
/// Status B at reset: 24-hour mode, BCD.
const STATUS_B_RESET: u8 = 0x02;
/// Status B: updates stopped while the guest sets the time.
const B_SET: u8 = 0x80;
/// Status B: periodic interrupt enable.
const B_PIE: u8 = 0x40;
/// Status B: alarm interrupt enable.
const B_AIE: u8 = 0x20;
/// Status B: update-ended interrupt enable.
const B_UIE: u8 = 0x10;
/// Status B: binary (not BCD) registers.
const B_BINARY: u8 = 0x04;
/// Status B: 24-hour mode.
const B_24H: u8 = 0x02;
/// Status C: some enabled interrupt is pending.
const C_IRQF: u8 = 0x80;
/// Status C: the periodic, alarm and update-ended flags (same bit
/// positions as their enables in status B).
const C_FLAGS: u8 = 0x70;
const C_PF: u8 = 0x40;
const C_AF: u8 = 0x20;
const C_UF: u8 = 0x10;
/// Status D: valid RAM and time (the battery is fine).
const STATUS_D: u8 = 0x80;
/// Hours register, 12-hour mode: PM.
const HOUR_PM: u8 = 0x80;
/// An alarm register value at or above this matches anything.
const ALARM_ANY: u8 = 0xc0;

/// A calendar time in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// Full year, e.g. 2026.
    pub year: u32,
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=59.
    pub second: u8,
    /// 1 (Sunday) ..= 7, the RTC's convention.
    pub weekday: u8,
}

impl CivilTime {
    /// The calendar time `secs` seconds after 1970-01-01T00:00:00Z.
    pub fn from_unix(secs: u64) -> Self {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        // Proleptic Gregorian calendar, counted in 400-year eras that start
        // on March 1st so the leap day is the last day of the era-year.
        let z = days + 719_468; // days since 0000-03-01
        let era = z / 146_097;
        let doe = z % 146_097; // day of era, 0..=146096
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365, from March 1st
        let mp = (5 * doy + 2) / 153; // month from March, 0..=11
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        Self {
            year: u32::try_from(year).unwrap_or(u32::MAX),
            month: month as u8,
            day: day as u8,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
            // 1970-01-01 was a Thursday (5 in 1 = Sunday numbering).
            weekday: ((days + 4) % 7 + 1) as u8,
        }
    }

    /// Seconds since 1970-01-01T00:00:00Z (negative before it). Fields out
    /// of range (a guest may write anything) are clamped to their range;
    /// a day past the month's end runs into the next month.
    pub fn to_unix(&self) -> i64 {
        let month = i64::from(self.month.clamp(1, 12));
        let day = i64::from(self.day.clamp(1, 31));
        let year = i64::from(self.year) - i64::from(month <= 2);
        let era = year.div_euclid(400);
        let yoe = year.rem_euclid(400); // 0..=399
        let mp = (month + 9) % 12; // March = 0
        let doy = (153 * mp + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400
            + i64::from(self.hour.min(23)) * 3600
            + i64::from(self.minute.min(59)) * 60
            + i64::from(self.second.min(59))
    }

    /// The host's current UTC time (the epoch if the host clock is before it).
    pub fn now() -> Self {
        Self::from_unix(host_clock().as_secs())
    }
}

/// The host's time since the epoch (zero if the clock is before it).
fn host_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Where the RTC's time comes from: time since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> Duration + Send + Sync>;

/// Binary 0..=99 to packed BCD.
fn bcd(v: u32) -> u8 {
    let v = v % 100;
    ((v / 10) << 4 | (v % 10)) as u8
}

/// Packed BCD to binary (garbage digits give garbage, never a panic).
fn from_bcd(v: u8) -> u8 {
    (v >> 4).wrapping_mul(10).wrapping_add(v & 0x0f)
}

/// The periodic interrupt's period for status A's rate bits (1..=15).
fn periodic_period(rate: u8) -> Option<Duration> {
    // 32.768 kHz base: rates 1 and 2 are 256 Hz and 128 Hz, rate r >= 3
    // is 32768 >> (r - 1) Hz.
    let hz: u64 = match rate {
        0 => return None,
        1 => 256,
        2 => 128,
        r => 32_768 >> (r - 1),
    };
    Some(Duration::from_nanos(1_000_000_000 / hz))
}

/// The register state, shared with the timer thread.
struct State {
    index: u8,
    /// Status A and B, the alarms and the battery-backed RAM (the time
    /// registers are computed, not stored).
    cmos: [u8; 128],
    /// Guest time minus host time, seconds.
    offset: i64,
    /// Status C.
    flags: u8,
    /// While SET is on: the time being written (updates are stopped).
    latched: Option<CivilTime>,
    /// The last guest second the flags account for.
    last_second: Option<u64>,
    /// Host time of the next periodic flag.
    next_periodic: Option<Duration>,
    irq: Option<IrqLine>,
    clock: Clock,
    stop: bool,
}

impl State {
    fn now(&self) -> Duration {
        (self.clock)()
    }

    fn guest_secs(&self, now: Duration) -> u64 {
        let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        u64::try_from(secs.saturating_add(self.offset)).unwrap_or(0)
    }

    /// The time the registers show.
    fn time(&self, now: Duration) -> CivilTime {
        self.latched
            .unwrap_or_else(|| CivilTime::from_unix(self.guest_secs(now)))
    }

    fn mode(&self) -> u8 {
        self.cmos[usize::from(REG_STATUS_B)]
    }

    /// A 0..=99 value as the guest's mode shows it.
    fn encode(&self, v: u32) -> u8 {
        if self.mode() & B_BINARY != 0 {
            (v % 100) as u8
        } else {
            bcd(v)
        }
    }

    fn decode(&self, v: u8) -> u8 {
        if self.mode() & B_BINARY != 0 {
            v
        } else {
            from_bcd(v)
        }
    }

    fn encode_hour(&self, hour: u8) -> u8 {
        if self.mode() & B_24H != 0 {
            return self.encode(hour.into());
        }
        let h12 = match hour % 12 {
            0 => 12,
            h => h,
        };
        self.encode(h12.into()) | if hour >= 12 { HOUR_PM } else { 0 }
    }

    fn decode_hour(&self, v: u8) -> u8 {
        if self.mode() & B_24H != 0 {
            return self.decode(v);
        }
        let h12 = self.decode(v & !HOUR_PM) % 12;
        h12 + if v & HOUR_PM != 0 { 12 } else { 0 }
    }

    fn read(&mut self, index: u8) -> u8 {
        let now = self.now();
        let t = self.time(now);
        match index {
            REG_SECONDS => self.encode(t.second.into()),
            REG_MINUTES => self.encode(t.minute.into()),
            REG_HOURS => self.encode_hour(t.hour),
            REG_WEEKDAY => self.encode(t.weekday.into()),
            REG_DAY => self.encode(t.day.into()),
            REG_MONTH => self.encode(t.month.into()),
            REG_YEAR => self.encode(t.year % 100),
            REG_CENTURY => self.encode(t.year / 100),
            REG_STATUS_A => self.cmos[usize::from(REG_STATUS_A)] & !A_UIP,
            REG_STATUS_C => {
                self.advance(now);
                std::mem::take(&mut self.flags)
            }
            REG_STATUS_D => STATUS_D,
            i => self.cmos[usize::from(i & 0x7f)],
        }
    }

    fn write(&mut self, index: u8, v: u8) {
        let now = self.now();
        match index {
            REG_SECONDS | REG_MINUTES | REG_HOURS | REG_DAY | REG_MONTH | REG_YEAR
            | REG_CENTURY => {
                let mut t = self.time(now);
                let d = self.decode(v);
                match index {
                    REG_SECONDS => t.second = d,
                    REG_MINUTES => t.minute = d,
                    REG_HOURS => t.hour = self.decode_hour(v),
                    REG_DAY => t.day = d,
                    REG_MONTH => t.month = d,
                    REG_YEAR => t.year = t.year / 100 * 100 + u32::from(d % 100),
                    _ => t.year = u32::from(d) * 100 + t.year % 100,
                }
                match &mut self.latched {
                    Some(latched) => *latched = t,
                    // Written while the clock runs: it jumps there now.
                    None => self.set_time(&t, now),
                }
            }
            // Computed from the date.
            REG_WEEKDAY => {}
            REG_STATUS_A => {
                self.cmos[usize::from(REG_STATUS_A)] = v & !A_UIP;
                self.next_periodic = None;
            }
            REG_STATUS_B => {
                let old = self.mode();
                let mut new = v;
                if new & B_SET != 0 {
                    // The datasheet: setting SET clears UIE.
                    new &= !B_UIE;
                    if old & B_SET == 0 {
                        self.advance(now);
                        self.latched = Some(self.time(now));
                    }
                }
                self.cmos[usize::from(REG_STATUS_B)] = new;
                if new & B_SET == 0 {
                    if let Some(t) = self.latched.take() {
                        self.set_time(&t, now);
                    }
                }
                self.advance(now);
            }
            REG_STATUS_C | REG_STATUS_D => {}
            i => self.cmos[usize::from(i & 0x7f)] = v,
        }
    }

    /// Makes the clock show `t` from host time `now` on.
    fn set_time(&mut self, t: &CivilTime, now: Duration) {
        let host = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        self.offset = t.to_unix().saturating_sub(host);
        self.last_second = None;
    }

    fn alarm_matches(&self, t: &CivilTime) -> bool {
        let hit = |reg: u8, value: u8| {
            let alarm = self.cmos[usize::from(reg)];
            alarm >= ALARM_ANY || alarm == value
        };
        hit(REG_SECONDS_ALARM, self.encode(t.second.into()))
            && hit(REG_MINUTES_ALARM, self.encode(t.minute.into()))
            && hit(REG_HOURS_ALARM, self.encode_hour(t.hour))
    }

    /// Brings status C up to host time `now`, and raises the interrupt if
    /// an enabled flag became pending.
    fn advance(&mut self, now: Duration) {
        if self.latched.is_none() {
            let sec = self.guest_secs(now);
            match self.last_second {
                Some(last) if sec > last => {
                    self.flags |= C_UF;
                    // An h:m:s alarm matches at least once a day.
                    let first = last.saturating_add(1).max(sec.saturating_sub(86_400));
                    if (first..=sec).any(|s| self.alarm_matches(&CivilTime::from_unix(s))) {
                        self.flags |= C_AF;
                    }
                }
                _ => {}
            }
            self.last_second = Some(sec);
        }
        match periodic_period(self.cmos[usize::from(REG_STATUS_A)] & A_RATE) {
            None => self.next_periodic = None,
            Some(period) => match self.next_periodic {
                None => self.next_periodic = Some(now + period),
                Some(next) if now >= next => {
                    self.flags |= C_PF;
                    // Catch up without a burst: the next one is a period on.
                    self.next_periodic = Some(if now - next >= period {
                        now + period
                    } else {
                        next + period
                    });
                }
                Some(_) => {}
            },
        }
        let enabled = self.mode() & C_FLAGS;
        if self.flags & enabled != 0 && self.flags & C_IRQF == 0 {
            self.flags |= C_IRQF;
            if let Some(irq) = &self.irq {
                // A lost edge only delays the guest's handler until it
                // polls status C; nothing to report. (Through `trigger`:
                // it registers the irqfd the first time.)
                let _ = vm_superio::Trigger::trigger(irq);
            }
        }
    }

    /// How long the timer thread may sleep: until the next second (UIE,
    /// AIE) or periodic flag (PIE) that would raise the interrupt, or
    /// until a register changes (`None`).
    fn next_event(&self, now: Duration) -> Option<Duration> {
        let mode = self.mode();
        let mut wait: Option<Duration> = None;
        if mode & (B_UIE | B_AIE) != 0 && self.latched.is_none() {
            wait = Some(Duration::from_secs(1) - Duration::from_nanos(now.subsec_nanos().into()));
        }
        if mode & B_PIE != 0 {
            if let Some(next) = self.next_periodic {
                let until = next.saturating_sub(now);
                wait = Some(wait.map_or(until, |w| w.min(until)));
            }
        }
        wait
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The timer thread: sleeps until the next event that would raise the
    /// interrupt, processes it, and ends when the device is dropped.
    fn run_timer(&self) {
        let mut st = self.lock();
        while !st.stop {
            let now = st.now();
            st.advance(now);
            st = match st.next_event(now) {
                // At least a millisecond: the flags are computed, not
                // counted, so sleeping a little long loses nothing.
                Some(wait) => {
                    self.changed
                        .wait_timeout(st, wait.max(Duration::from_micros(100)))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .changed
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

/// The CMOS/RTC device.
pub struct Rtc {
    shared: Arc<Shared>,
    /// Whether a timer thread is still to be started ([`Rtc::new`]'s
    /// devices start it when the guest first enables an interrupt).
    timer_pending: bool,
}

impl std::fmt::Debug for Rtc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rtc")
            .field("index", &self.shared.lock().index)
            .finish_non_exhaustive()
    }
}

impl Rtc {
    /// An RTC showing the host's time, raising `irq` (registered by the
    /// caller as GSI [`RTC_GSI`]), with a timer thread for its interrupts.
    /// The thread starts when the guest first enables an interrupt (UIE,
    /// AIE or PIE in status B): most guests never do, and a VM that ends
    /// quickly should not pay for a thread.
    pub fn new(irq: Option<IrqLine>) -> Self {
        let mut rtc = Self::with_clock(Arc::new(host_clock), irq);
        rtc.timer_pending = true;
        rtc
    }

    /// Starts the timer thread if it is still pending and an interrupt is
    /// enabled.
    fn start_timer(&mut self) -> std::io::Result<()> {
        if !self.timer_pending || self.shared.lock().mode() & (B_UIE | B_AIE | B_PIE) == 0 {
            return Ok(());
        }
        let shared = Arc::clone(&self.shared);
        std::thread::Builder::new()
            .name("rtc".into())
            .spawn(move || shared.run_timer())?;
        self.timer_pending = false;
        Ok(())
    }

    /// An RTC whose time comes from `clock`, without a timer thread: its
    /// flags advance when the guest reads status C or [`poll`](Self::poll)
    /// is called (for tests).
    pub fn with_clock(clock: Clock, irq: Option<IrqLine>) -> Self {
        let mut cmos = [0u8; 128];
        cmos[usize::from(REG_STATUS_A)] = STATUS_A_RESET;
        cmos[usize::from(REG_STATUS_B)] = STATUS_B_RESET;
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    index: 0,
                    cmos,
                    offset: 0,
                    flags: 0,
                    latched: None,
                    last_second: None,
                    next_periodic: None,
                    irq,
                    clock,
                    stop: false,
                }),
                changed: Condvar::new(),
            }),
            timer_pending: false,
        }
    }

    /// Brings the flags up to the clock's time and raises the interrupt if
    /// due: what the timer thread does at each event.
    pub fn poll(&self) {
        let mut st = self.shared.lock();
        let now = st.now();
        st.advance(now);
    }
}

impl Drop for Rtc {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
    }
}

impl PortDevice for Rtc {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        data.fill(0xff);
        if let (1, Some(b)) = (offset, data.first_mut()) {
            let mut st = self.shared.lock();
            let index = st.index;
            *b = st.read(index);
        }
    }

    fn write(&mut self, offset: u16, data: &[u8]) -> Result<IoAction, DeviceError> {
        let Some(&v) = data.first() else {
            return Ok(IoAction::Continue);
        };
        let mut st = self.shared.lock();
        match offset {
            // Bit 7 of the index port is the NMI mask, not part of the index.
            0 => st.index = v & 0x7f,
            1 => {
                let index = st.index;
                st.write(index, v);
                drop(st);
                self.start_timer().map_err(DeviceError::Timer)?;
                self.shared.changed.notify_all();
            }
            _ => {}
        }
        Ok(IoAction::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn unix_to_civil_known_dates() {
        assert_eq!(
            CivilTime::from_unix(0),
            CivilTime {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
                weekday: 5
            }
        );
        // 2000-02-29T12:34:56Z, a Tuesday (date -d @951827696 -u).
        assert_eq!(
            CivilTime::from_unix(951_827_696),
            CivilTime {
                year: 2000,
                month: 2,
                day: 29,
                hour: 12,
                minute: 34,
                second: 56,
                weekday: 3
            }
        );
        // 2026-12-31T23:59:59Z, a Thursday.
        assert_eq!(
            CivilTime::from_unix(1_798_761_599),
            CivilTime {
                year: 2026,
                month: 12,
                day: 31,
                hour: 23,
                minute: 59,
                second: 59,
                weekday: 5
            }
        );
    }

    /// Reference conversion by walking years and months from 1970: slow,
    /// obviously right.
    fn naive(secs: u64) -> (u32, u8, u8, u8, u8, u8) {
        let leap = |y: u32| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let mut days = secs / 86_400;
        let mut year = 1970;
        loop {
            let len = if leap(year) { 366 } else { 365 };
            if days < len {
                break;
            }
            days -= len;
            year += 1;
        }
        let months = [
            31,
            if leap(year) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        let mut month = 0;
        while days >= months[month] {
            days -= months[month];
            month += 1;
        }
        let rem = secs % 86_400;
        (
            year,
            month as u8 + 1,
            days as u8 + 1,
            (rem / 3600) as u8,
            (rem / 60 % 60) as u8,
            (rem % 60) as u8,
        )
    }

    proptest::proptest! {
        #[test]
        fn civil_time_matches_the_naive_calendar(secs in 0u64..253_402_300_800) {
            let t = CivilTime::from_unix(secs);
            proptest::prop_assert_eq!(
                (t.year, t.month, t.day, t.hour, t.minute, t.second),
                naive(secs)
            );
            // Weekdays advance by one per day, Thursday on day 0.
            proptest::prop_assert_eq!(u64::from(t.weekday), (secs / 86_400 + 4) % 7 + 1);
            // And back.
            proptest::prop_assert_eq!(t.to_unix(), secs as i64);
        }

        #[test]
        fn any_register_traffic_is_survived(ops in proptest::collection::vec((0u8..2, proptest::prelude::any::<u8>()), 0..64)) {
            let (mut rtc, clock) = test_rtc(1_700_000_000, None);
            for (i, (port, v)) in ops.into_iter().enumerate() {
                clock.fetch_add(250_000_000 * (i as u64 % 7), Ordering::SeqCst);
                if v % 3 == 0 {
                    let mut b = [0u8];
                    rtc.read(u16::from(port), &mut b);
                } else {
                    rtc.write(u16::from(port), &[v]).unwrap();
                }
            }
        }
    }

    #[test]
    fn civil_to_unix_before_the_epoch_and_clamped() {
        let t = CivilTime {
            year: 1969,
            month: 12,
            day: 31,
            hour: 23,
            minute: 59,
            second: 59,
            weekday: 0,
        };
        assert_eq!(t.to_unix(), -1);
        let garbage = CivilTime {
            year: 2000,
            month: 0x99,
            day: 0,
            hour: 99,
            minute: 99,
            second: 99,
            weekday: 0,
        };
        // Month 12, day 1, 23:59:59.
        assert_eq!(garbage.to_unix(), 975_715_199);
    }

    /// An RTC on a settable clock (nanoseconds since the epoch).
    fn test_rtc(start_secs: u64, irq: Option<IrqLine>) -> (Rtc, Arc<AtomicU64>) {
        let nanos = Arc::new(AtomicU64::new(start_secs * 1_000_000_000));
        let n = Arc::clone(&nanos);
        let clock: Clock = Arc::new(move || Duration::from_nanos(n.load(Ordering::SeqCst)));
        (Rtc::with_clock(clock, irq), nanos)
    }

    fn rd(rtc: &mut Rtc, idx: u8) -> u8 {
        rtc.write(0, &[idx | 0x80]).unwrap();
        let mut b = [0u8];
        rtc.read(1, &mut b);
        b[0]
    }

    fn wr(rtc: &mut Rtc, idx: u8, v: u8) {
        rtc.write(0, &[idx]).unwrap();
        rtc.write(1, &[v]).unwrap();
    }

    fn advance(clock: &AtomicU64, d: Duration) {
        clock.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
    }

    /// Interrupt edges raised so far (and resets the count).
    fn edges(irq: &IrqLine) -> u64 {
        irq.eventfd().read().unwrap_or(0)
    }

    #[test]
    fn registers_read_bcd_through_index_port() {
        let (mut rtc, _) = test_rtc(951_827_696, None);
        assert_eq!(rd(&mut rtc, REG_SECONDS), 0x56);
        assert_eq!(rd(&mut rtc, REG_MINUTES), 0x34);
        assert_eq!(rd(&mut rtc, REG_HOURS), 0x12);
        assert_eq!(rd(&mut rtc, REG_DAY), 0x29);
        assert_eq!(rd(&mut rtc, REG_MONTH), 0x02);
        assert_eq!(rd(&mut rtc, REG_YEAR), 0x00);
        assert_eq!(rd(&mut rtc, REG_CENTURY), 0x20);
        assert_eq!(rd(&mut rtc, REG_WEEKDAY), 0x03);
        assert_eq!(rd(&mut rtc, REG_STATUS_A), 0x26, "never update-in-progress");
        assert_eq!(rd(&mut rtc, REG_STATUS_B), 0x02, "24h, BCD");
        assert_eq!(rd(&mut rtc, REG_STATUS_D), 0x80);
    }

    #[test]
    fn binary_and_12_hour_modes() {
        // 2000-02-29T12:34:56Z is 12:34:56 PM; 13:34:56 is 1 PM.
        let (mut rtc, clock) = test_rtc(951_827_696, None);
        wr(&mut rtc, REG_STATUS_B, B_BINARY | B_24H);
        assert_eq!(rd(&mut rtc, REG_SECONDS), 56);
        assert_eq!(rd(&mut rtc, REG_HOURS), 12);
        assert_eq!(rd(&mut rtc, REG_CENTURY), 20);
        wr(&mut rtc, REG_STATUS_B, 0);
        assert_eq!(rd(&mut rtc, REG_HOURS), 0x12 | HOUR_PM);
        advance(&clock, Duration::from_secs(3600));
        assert_eq!(rd(&mut rtc, REG_HOURS), 0x01 | HOUR_PM);
        advance(&clock, Duration::from_secs(11 * 3600));
        assert_eq!(rd(&mut rtc, REG_HOURS), 0x12, "midnight is 12 AM");
    }

    #[test]
    fn the_guest_sets_its_own_time_without_touching_the_host() {
        let (mut rtc, clock) = test_rtc(1_700_000_000, None);
        // Linux's way: SET, the fields (BCD, 24 h), SET off.
        wr(&mut rtc, REG_STATUS_B, B_SET | B_24H | B_UIE);
        assert_eq!(rd(&mut rtc, REG_STATUS_B) & B_UIE, 0, "SET clears UIE");
        for (reg, v) in [
            (REG_YEAR, 0x30),
            (REG_MONTH, 0x01),
            (REG_DAY, 0x02),
            (REG_HOURS, 0x03),
            (REG_MINUTES, 0x04),
            (REG_SECONDS, 0x05),
        ] {
            wr(&mut rtc, reg, v);
        }
        // Frozen while SET is on.
        advance(&clock, Duration::from_secs(5));
        assert_eq!(rd(&mut rtc, REG_SECONDS), 0x05);
        wr(&mut rtc, REG_STATUS_B, B_24H);
        assert_eq!(rd(&mut rtc, REG_SECONDS), 0x05);
        advance(&clock, Duration::from_secs(61));
        assert_eq!(rd(&mut rtc, REG_SECONDS), 0x06);
        assert_eq!(rd(&mut rtc, REG_MINUTES), 0x05);
        assert_eq!(rd(&mut rtc, REG_YEAR), 0x30);
        assert_eq!(rd(&mut rtc, REG_CENTURY), 0x20);
        // 2030-01-02 was a Wednesday (4).
        assert_eq!(rd(&mut rtc, REG_WEEKDAY), 0x04);
        // A field written while the clock runs takes effect at once.
        wr(&mut rtc, REG_CENTURY, 0x21);
        assert_eq!(rd(&mut rtc, REG_CENTURY), 0x21);
        assert_eq!(rd(&mut rtc, REG_YEAR), 0x30);
    }

    #[test]
    fn update_flag_every_second_and_its_interrupt_only_when_enabled() {
        let irq = IrqLine::new().unwrap();
        let probe = irq.try_clone().unwrap();
        let (mut rtc, clock) = test_rtc(1_700_000_000, Some(irq));
        // (PF runs at the reset rate, 1024 Hz, but PIE is off: masked.)
        assert_eq!(rd(&mut rtc, REG_STATUS_C) & !C_PF, 0);
        advance(&clock, Duration::from_millis(1500));
        rtc.poll();
        assert_eq!(edges(&probe), 0, "UIE off: no interrupt");
        assert_eq!(
            rd(&mut rtc, REG_STATUS_C) & !C_PF,
            C_UF,
            "flag without IRQF"
        );
        assert_eq!(rd(&mut rtc, REG_STATUS_C) & !C_PF, 0, "reading C clears it");
        wr(&mut rtc, REG_STATUS_B, B_24H | B_UIE);
        advance(&clock, Duration::from_secs(1));
        rtc.poll();
        rtc.poll();
        assert_eq!(edges(&probe), 1, "one edge per pending interrupt");
        assert_eq!(rd(&mut rtc, REG_STATUS_C) & !C_PF, C_IRQF | C_UF);
        advance(&clock, Duration::from_secs(1));
        rtc.poll();
        assert_eq!(edges(&probe), 1, "again after C was read");
    }

    #[test]
    fn alarm_fires_when_hours_minutes_seconds_match() {
        let irq = IrqLine::new().unwrap();
        let probe = irq.try_clone().unwrap();
        // 2023-11-14T22:13:20Z.
        let (mut rtc, clock) = test_rtc(1_700_000_000, Some(irq));
        wr(&mut rtc, REG_HOURS_ALARM, 0x22);
        wr(&mut rtc, REG_MINUTES_ALARM, 0x13);
        wr(&mut rtc, REG_SECONDS_ALARM, 0x22);
        wr(&mut rtc, REG_STATUS_B, B_24H | B_AIE);
        assert_eq!(rd(&mut rtc, REG_STATUS_C) & !C_PF, 0);
        advance(&clock, Duration::from_secs(1));
        rtc.poll();
        assert_eq!(edges(&probe), 0, "22:13:21 is not the alarm");
        assert_eq!(rd(&mut rtc, REG_STATUS_C) & !C_PF, C_UF);
        advance(&clock, Duration::from_secs(1));
        rtc.poll();
        assert_eq!(edges(&probe), 1);
        assert_eq!(rd(&mut rtc, REG_STATUS_C) & !C_PF, C_IRQF | C_AF | C_UF);
        // "Any" in every field: an alarm each second (Linux's UIE emulation
        // sets the next second's h:m:s instead, the same thing).
        for reg in [REG_HOURS_ALARM, REG_MINUTES_ALARM, REG_SECONDS_ALARM] {
            wr(&mut rtc, reg, 0xff);
        }
        advance(&clock, Duration::from_secs(1));
        rtc.poll();
        assert_eq!(edges(&probe), 1);
        assert_eq!(rd(&mut rtc, REG_STATUS_C) & C_AF, C_AF);
    }

    #[test]
    fn periodic_flag_at_the_status_a_rate() {
        let irq = IrqLine::new().unwrap();
        let probe = irq.try_clone().unwrap();
        let (mut rtc, clock) = test_rtc(1_700_000_000, Some(irq));
        assert_eq!(periodic_period(6), Some(Duration::from_nanos(976_562)));
        assert_eq!(periodic_period(15), Some(Duration::from_millis(500)));
        assert_eq!(periodic_period(1), Some(Duration::from_nanos(3_906_250)));
        wr(&mut rtc, REG_STATUS_A, 0x2f); // 2 Hz
        wr(&mut rtc, REG_STATUS_B, B_24H | B_PIE);
        advance(&clock, Duration::from_millis(400));
        rtc.poll();
        assert_eq!(edges(&probe), 0);
        advance(&clock, Duration::from_millis(200));
        rtc.poll();
        assert_eq!(edges(&probe), 1);
        assert_eq!(rd(&mut rtc, REG_STATUS_C) & (C_IRQF | C_PF), C_IRQF | C_PF);
        // Rate 0 stops it.
        wr(&mut rtc, REG_STATUS_A, 0x20);
        advance(&clock, Duration::from_secs(2));
        rtc.poll();
        assert_eq!(rd(&mut rtc, REG_STATUS_C) & C_PF, 0);
    }

    #[test]
    fn battery_backed_ram_keeps_what_is_written() {
        let (mut rtc, _) = test_rtc(0, None);
        for i in 0x0e..0x80u8 {
            if i != REG_CENTURY {
                wr(&mut rtc, i, i ^ 0x5a);
            }
        }
        for i in 0x0e..0x80u8 {
            if i != REG_CENTURY {
                assert_eq!(rd(&mut rtc, i), i ^ 0x5a);
            }
        }
        // Status A's UIP bit and status C/D are not writable.
        wr(&mut rtc, REG_STATUS_A, 0xff);
        assert_eq!(rd(&mut rtc, REG_STATUS_A), 0x7f);
        wr(&mut rtc, REG_STATUS_D, 0);
        assert_eq!(rd(&mut rtc, REG_STATUS_D), STATUS_D);
    }

    #[test]
    fn the_timer_thread_raises_the_update_interrupt_on_time() {
        let irq = IrqLine::new().unwrap();
        let probe = irq.try_clone().unwrap();
        let mut rtc = Rtc::new(Some(irq));
        // No thread until an interrupt is enabled.
        wr(&mut rtc, REG_STATUS_B, B_24H);
        assert!(rtc.timer_pending);
        wr(&mut rtc, REG_STATUS_B, B_24H | B_UIE);
        assert!(!rtc.timer_pending);
        // Within a couple of seconds an edge arrives without any poll.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while edges(&probe) == 0 {
            assert!(std::time::Instant::now() < deadline, "no update interrupt");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(rd(&mut rtc, REG_STATUS_C) & (C_IRQF | C_UF), C_IRQF | C_UF);
    }
}
