/**
 * Distinguished names. Each attribute becomes its own RDN (a SET of one
 * AttributeTypeAndValue): pkijs would otherwise put every attribute pushed into
 * one RelativeDistinguishedNames into a single multi-valued RDN (a pkijs pitfall).
 */
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { DerError, type Tlv, TAG, children, decodeOid, decodeString, expectTag } from './der';
import { ATTR } from './oids';

export interface NameAttribute {
  readonly type: string;
  readonly value: string;
}

const SHORT: Record<string, string> = {
  [ATTR.commonName]: 'CN',
  [ATTR.serialNumber]: 'serialNumber',
  [ATTR.country]: 'C',
  [ATTR.organization]: 'O',
  [ATTR.organizationalUnit]: 'OU',
  [ATTR.pseudonym]: 'pseudonym',
  [ATTR.emailAddress]: 'emailAddress',
};

function encodeValue(attr: NameAttribute): asn1js.BaseBlock {
  if (attr.type === ATTR.country || attr.type === ATTR.serialNumber) {
    if (!/^[A-Za-z0-9 '()+,\-./:=?]*$/.test(attr.value)) {
      throw new Error(`Cannot encode name attribute "${attr.value}": not a PrintableString`);
    }
    return new asn1js.PrintableString({ value: attr.value });
  }
  if (attr.type === ATTR.emailAddress) return new asn1js.IA5String({ value: attr.value });
  return new asn1js.Utf8String({ value: attr.value });
}

/** DER of a Name with one single-valued RDN per attribute, in the given order. */
export function encodeName(attrs: readonly NameAttribute[]): Uint8Array {
  for (const a of attrs) {
    if (a.value.length === 0 || a.value.length > 128) throw new Error(`Cannot encode name attribute "${a.value}": length must be 1..128`);
  }
  const rdns = attrs.map(
    (a) => new asn1js.Set({ value: [new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: a.type }), encodeValue(a)] })] }),
  );
  return new Uint8Array(new asn1js.Sequence({ value: rdns }).toBER());
}

/** A pkijs name that re-encodes to exactly these DER bytes. */
export function pkijsName(der: Uint8Array): pkijs.RelativeDistinguishedNames {
  return pkijs.RelativeDistinguishedNames.fromBER(new Uint8Array(der));
}

/** The attributes of a DER Name, in order (multi-valued RDNs flattened); strings we cannot read are kept as hex. */
export function parseName(name: Tlv): NameAttribute[] {
  const out: NameAttribute[] = [];
  for (const rdn of children(expectTag(name, TAG.sequence, 'name'), 'name')) {
    for (const atv of children(expectTag(rdn, TAG.set, 'relative distinguished name'), 'relative distinguished name')) {
      const [type, value, extra] = children(expectTag(atv, TAG.sequence, 'attribute'), 'attribute');
      if (!type || !value || extra) throw new DerError('Cannot parse name: bad attribute');
      let text: string;
      try {
        text = decodeString(value, 'name attribute');
      } catch {
        text = `#${Buffer.from(value.bytes).toString('hex')}`;
      }
      out.push({ type: decodeOid(type, 'attribute type'), value: text });
    }
  }
  return out;
}

/** Display form, most significant first, e.g. `O=A Corp, CN=a.example organisation CA`. */
export function formatName(attrs: readonly NameAttribute[]): string {
  return attrs.map((a) => `${SHORT[a.type] ?? a.type}=${a.value}`).join(', ');
}
