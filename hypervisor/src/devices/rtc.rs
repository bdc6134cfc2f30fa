//! A minimal MC146818 CMOS/RTC on ports 0x70 (index) and 0x71 (data).
//!
//! vm-superio has no CMOS device (only the ARM PL031 RTC), so this one is
//! written here. It answers the time registers with the host's UTC time in
//! BCD, 24-hour mode, and never reports an update in progress: Linux's RTC
//! probe and `mach_get_cmos_time` then finish in a handful of exits instead
//! of polling status A. Everything else reads 0 and writes are ignored
//! (the guest cannot set the host clock).

use std::time::{SystemTime, UNIX_EPOCH};

use super::{DeviceError, IoAction, PortDevice};

/// Index port; the data port follows it.
pub const RTC_BASE: u16 = 0x70;
/// Index and data.
pub const RTC_LEN: u16 = 2;

// Register numbers (MC146818 datasheet).
const REG_SECONDS: u8 = 0x00;
const REG_MINUTES: u8 = 0x02;
const REG_HOURS: u8 = 0x04;
const REG_WEEKDAY: u8 = 0x06;
const REG_DAY: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_STATUS_A: u8 = 0x0a;
const REG_STATUS_B: u8 = 0x0b;
const REG_STATUS_C: u8 = 0x0c;
const REG_STATUS_D: u8 = 0x0d;
const REG_CENTURY: u8 = 0x32;

/// Status A: 32.768 kHz time base, 1024 Hz rate, UIP (bit 7) clear.
const STATUS_A: u8 = 0x26;
/// Status B: 24-hour mode (bit 1); DM (bit 2) clear means BCD.
const STATUS_B: u8 = 0x02;
/// Status D: VRT, the battery-backed RAM and time are valid.
const STATUS_D: u8 = 0x80;

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

    /// The host's current UTC time (the epoch if the host clock is before it).
    pub fn now() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self::from_unix(secs)
    }
}

/// Binary 0..=99 to packed BCD.
fn bcd(v: u32) -> u8 {
    let v = v % 100;
    ((v / 10) << 4 | (v % 10)) as u8
}

/// The CMOS/RTC device.
pub struct Rtc {
    index: u8,
    clock: Box<dyn Fn() -> CivilTime + Send>,
}

impl std::fmt::Debug for Rtc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rtc").field("index", &self.index).finish()
    }
}

impl Default for Rtc {
    fn default() -> Self {
        Self::with_clock(CivilTime::now)
    }
}

impl Rtc {
    /// An RTC showing the host's time.
    pub fn new() -> Self {
        Self::default()
    }

    /// An RTC whose time comes from `clock` (for tests).
    pub fn with_clock(clock: impl Fn() -> CivilTime + Send + 'static) -> Self {
        Self {
            index: 0,
            clock: Box::new(clock),
        }
    }

    fn register(&self, index: u8) -> u8 {
        let t = || (self.clock)();
        match index {
            REG_SECONDS => bcd(t().second.into()),
            REG_MINUTES => bcd(t().minute.into()),
            REG_HOURS => bcd(t().hour.into()),
            REG_WEEKDAY => bcd(t().weekday.into()),
            REG_DAY => bcd(t().day.into()),
            REG_MONTH => bcd(t().month.into()),
            REG_YEAR => bcd(t().year % 100),
            REG_CENTURY => bcd(t().year / 100),
            REG_STATUS_A => STATUS_A,
            REG_STATUS_B => STATUS_B,
            REG_STATUS_C => 0,
            REG_STATUS_D => STATUS_D,
            _ => 0,
        }
    }
}

impl PortDevice for Rtc {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        data.fill(0xff);
        if let (1, Some(b)) = (offset, data.first_mut()) {
            *b = self.register(self.index);
        }
    }

    fn write(&mut self, offset: u16, data: &[u8]) -> Result<IoAction, DeviceError> {
        if let (0, Some(&v)) = (offset, data.first()) {
            // Bit 7 of the index port is the NMI mask, not part of the index.
            self.index = v & 0x7f;
        }
        Ok(IoAction::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    #[test]
    fn registers_read_bcd_through_index_port() {
        let mut rtc = Rtc::with_clock(|| CivilTime::from_unix(951_827_696));
        let mut read = |idx: u8| {
            rtc.write(0, &[idx | 0x80]).unwrap();
            let mut b = [0u8];
            rtc.read(1, &mut b);
            b[0]
        };
        assert_eq!(read(REG_SECONDS), 0x56);
        assert_eq!(read(REG_MINUTES), 0x34);
        assert_eq!(read(REG_HOURS), 0x12);
        assert_eq!(read(REG_DAY), 0x29);
        assert_eq!(read(REG_MONTH), 0x02);
        assert_eq!(read(REG_YEAR), 0x00);
        assert_eq!(read(REG_CENTURY), 0x20);
        assert_eq!(read(REG_WEEKDAY), 0x03);
        assert_eq!(read(REG_STATUS_A) & 0x80, 0, "never update-in-progress");
        assert_eq!(read(REG_STATUS_B), 0x02, "24h, BCD");
        assert_eq!(read(REG_STATUS_D), 0x80);
    }
}
