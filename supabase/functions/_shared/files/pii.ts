// Personal data in text files: e-mail addresses, phone numbers and national ids (US SSN, UK
// National Insurance number, with their usual separators). A flag for people to look at, so it
// errs on the side of finding: a false alarm costs a look, a miss costs a leak.
export interface PiiFindings {
  email: number;
  phone: number;
  national_id: number;
}

// Matches start only where a token starts: without the lookbehind, a long run of letters would be
// rescanned from every position in it (quadratic in the run's length).
const EMAIL = /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g;
// With a country code or an area code in brackets, two groups of digits suffice; without, three.
const PHONE = new RegExp(
  String.raw`(?<![\w-])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,3}` +
    String.raw`|\(\d{2,4}\)[ .-]?\d{3,4}[ .-]\d{3,4}|\d{3,4}[ .-]\d{3,4}[ .-]\d{3,4})(?![\w-])`,
  "g",
);
const NATIONAL_ID = /\b(?:\d{3}-\d{2}-\d{4}|[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D])\b/g;

export function findPii(text: string): PiiFindings {
  const count = (re: RegExp) => text.match(re)?.length ?? 0;
  return { email: count(EMAIL), phone: count(PHONE), national_id: count(NATIONAL_ID) };
}

export const hasPii = (f: PiiFindings) => f.email + f.phone + f.national_id > 0;
