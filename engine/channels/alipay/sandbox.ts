// A local Alipay gateway: it verifies our RSA2 request signatures like openapi.alipay.com (bad
// ones get isv.invalid-signature), signs its answers over the raw response node (escaping `/` as
// Alipay does, so verification must use the raw bytes), posts signed form notifications, and
// serves the trade bill as a plain UTF-8 CSV (production ships a zip of GBK CSVs).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { inlineCrypto } from '../crypto.ts';
import { type OrderBook, SandboxKit, type SandboxOrder, type SandboxRefund, type SandboxRequest, type SandboxResponse, type SandboxSpec } from '../sandbox-kit.ts';
import type { AlipayConfig } from './adapter.ts';
import { csvCell, fenToYuan, fromShanghaiTime, NOTIFY_SIGN_EXCLUDED, REQUEST_SIGN_EXCLUDED, signContent, toShanghaiTime, yuanToFen } from './transformers.ts';
import { ALIPAY_BILL_COLUMNS, ALIPAY_METHODS, type AlipayMethod, type AlipayResponseBase } from './wire.ts';

/** Alipay's fee on the sandbox's trades: 0.6%, rounded half up to the fen. */
export const ALIPAY_SANDBOX_FEE_PER_MILLE = 6;
export const alipaySandboxFee = (fen: number): number => Math.floor((fen * ALIPAY_SANDBOX_FEE_PER_MILLE + 500) / 1000);

const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;

type Params = Record<string, string>;
type Biz = Record<string, unknown>;

export async function startAlipaySandbox(opts: { port?: number; host?: string } = {}): Promise<{ kit: SandboxKit; url: string; config: AlipayConfig }> {
  const app = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const alipay = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const appPublicPem = app.publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const alipayPrivatePem = alipay.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const appId = `2021${randomBytes(6).readUIntBE(0, 6).toString().padStart(12, '0')}`;
  const sellerId = '2088102177846880';
  let base = '';

  /** `{"<method>_response":{…},"sign":"…"}`, the node written with `\/` like Alipay's own JSON. */
  async function signed(method: string, node: AlipayResponseBase & Record<string, unknown>): Promise<SandboxResponse> {
    const nodeText = JSON.stringify(node).replaceAll('/', '\\/');
    const sign = await inlineCrypto.rsaSign(alipayPrivatePem, nodeText);
    return { status: 200, headers: { 'content-type': 'text/html;charset=utf-8' }, body: `{"${method.replaceAll('.', '_')}_response":${nodeText},"sign":"${sign}"}` };
  }
  const ok = (extra: Record<string, unknown> = {}) => ({ code: '10000', msg: 'Success', ...extra });
  const bizFail = (subCode: string, subMsg: string) => ({ code: '40004', msg: 'Business Failed', sub_code: subCode, sub_msg: subMsg });
  const invalid = (subCode: string, subMsg: string) => ({ code: '40002', msg: 'Invalid Arguments', sub_code: subCode, sub_msg: subMsg });

  /** Query string and form body together, as the gateway reads them. */
  function paramsOf(req: SandboxRequest): Params | null {
    const p: Params = {};
    for (const [k, v] of req.query) p[k] = v;
    const ct = String(req.headers['content-type'] ?? '');
    if (req.raw.length > 0 && ct.startsWith('application/x-www-form-urlencoded')) {
      for (const [k, v] of new URLSearchParams(req.raw.toString('utf8'))) {
        if (Object.hasOwn(p, k) && p[k] !== v) return null;
        p[k] = v;
      }
    }
    return p;
  }

  /** The gateway's checks before a method runs; an error node or the parsed biz_content. */
  async function check(p: Params): Promise<{ error: AlipayResponseBase } | { biz: Biz }> {
    if (p.app_id !== appId) return { error: invalid('isv.invalid-app-id', '无效的AppID参数') };
    if (p.sign_type !== 'RSA2') return { error: invalid('isv.invalid-signature-type', '无效的签名类型') };
    if (!p.sign) return { error: { code: '40001', msg: 'Missing Required Arguments', sub_code: 'isv.missing-signature', sub_msg: '缺少签名参数' } };
    if ((p.charset ?? '').toLowerCase() !== 'utf-8') return { error: invalid('isv.invalid-charset', '字符集错误') };
    if (!TIMESTAMP_RE.test(p.timestamp ?? '') || fromShanghaiTime(p.timestamp!) === null) return { error: invalid('isv.invalid-timestamp', '非法的时间戳参数') };
    const content = signContent(p, REQUEST_SIGN_EXCLUDED);
    if (!(await inlineCrypto.rsaVerify(appPublicPem, content, p.sign))) {
      return { error: invalid('isv.invalid-signature', `验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：${content}`) };
    }
    try {
      const biz = JSON.parse(p.biz_content ?? '') as unknown;
      if (typeof biz !== 'object' || biz === null || Array.isArray(biz)) throw new Error('not an object');
      return { biz: biz as Biz };
    } catch {
      return { error: invalid('isv.invalid-biz-content', 'biz_content 不是合法的 JSON') };
    }
  }

  const str = (b: Biz, k: string): string | null => (typeof b[k] === 'string' && b[k] !== '' ? (b[k] as string) : null);

  /** Opens (or finds) the trade of a precreate/wap.pay: the node of an error, or the order. */
  function openTrade(book: OrderBook, p: Params, biz: Biz, method: AlipayMethod): AlipayResponseBase | SandboxOrder {
    const outTradeNo = str(biz, 'out_trade_no');
    const subject = str(biz, 'subject');
    const amount = yuanToFen(str(biz, 'total_amount') ?? '');
    if (!outTradeNo || !subject || amount === null || amount <= 0) return invalid('isv.invalid-parameter', 'out_trade_no, total_amount 或 subject 无效');
    const expiresMs = str(biz, 'time_expire') === null ? Date.now() + 2 * 3600_000 : fromShanghaiTime(str(biz, 'time_expire')!);
    if (expiresMs === null) return invalid('isv.invalid-parameter', 'time_expire 格式错误');
    const existing = book.get(outTradeNo);
    if (existing) {
      if (existing.status === 'succeeded') return bizFail('ACQ.TRADE_HAS_SUCCESS', '交易已被支付');
      if (existing.status === 'closed') return bizFail('ACQ.TRADE_HAS_CLOSE', '交易已经关闭');
      if (existing.amount !== amount) return bizFail('ACQ.CONTEXT_INCONSISTENT', '交易信息被篡改');
      return existing;
    }
    if (expiresMs <= Date.now()) return bizFail('ACQ.TRADE_HAS_CLOSE', '交易已经关闭');
    return book.open({ out_trade_no: outTradeNo, amount, currency: 'CNY', subject, notify_url: p.notify_url ?? '', expires_ms: expiresMs, extra: { method, return_url: p.return_url ?? null } });
  }

  function tradeStatusOf(o: SandboxOrder): 'WAIT_BUYER_PAY' | 'TRADE_SUCCESS' | 'TRADE_CLOSED' {
    if (o.status === 'pending') return o.expires_ms <= Date.now() ? 'TRADE_CLOSED' : 'WAIT_BUYER_PAY';
    if (o.status === 'closed') return 'TRADE_CLOSED';
    const refunded = o.refunds.reduce((s, r) => s + r.amount, 0);
    return refunded >= (o.paid_amount ?? o.amount) ? 'TRADE_CLOSED' : 'TRADE_SUCCESS';
  }

  async function gateway(req: SandboxRequest, book: OrderBook): Promise<SandboxResponse> {
    const p = paramsOf(req);
    if (!p) return signed('error', invalid('isv.invalid-parameter', '参数重复'));
    const method = p.method as AlipayMethod;
    if (!(ALIPAY_METHODS as readonly string[]).includes(method)) {
      return { status: 200, headers: { 'content-type': 'text/html;charset=utf-8' }, body: JSON.stringify({ error_response: invalid('isv.invalid-method', '不存在的方法名') }) };
    }
    const checked = await check(p);
    if (method === 'alipay.trade.wap.pay') {
      // The buyer's browser opened the cashier page.
      if ('error' in checked) return { status: 400, headers: { 'content-type': 'text/html;charset=utf-8' }, body: `<html><body>错误代码 ${checked.error.sub_code}</body></html>` };
      const r = openTrade(book, p, checked.biz, method);
      if (!('out_trade_no' in r)) return { status: 400, headers: { 'content-type': 'text/html;charset=utf-8' }, body: `<html><body>错误代码 ${r.sub_code}</body></html>` };
      return { status: 200, headers: { 'content-type': 'text/html;charset=utf-8' }, body: `<html><body>Alipay sandbox cashier: ${r.out_trade_no} ¥${fenToYuan(r.amount)}. POST /__sandbox/pay {"out_trade_no":"${r.out_trade_no}"} to pay.</body></html>` };
    }
    if ('error' in checked) return signed(method, checked.error);
    const biz = checked.biz;
    const outTradeNo = str(biz, 'out_trade_no');
    const order = outTradeNo ? book.get(outTradeNo) : undefined;
    switch (method) {
      case 'alipay.trade.precreate': {
        const r = openTrade(book, p, biz, method);
        if (!('out_trade_no' in r)) return signed(method, r);
        return signed(method, ok({ out_trade_no: r.out_trade_no, qr_code: `${base}/qr/${r.order_id}` }));
      }
      case 'alipay.trade.query': {
        if (!order) return signed(method, bizFail('ACQ.TRADE_NOT_EXIST', '交易不存在'));
        const node: Record<string, unknown> = {
          trade_no: order.trade_no ?? order.order_id,
          out_trade_no: order.out_trade_no,
          buyer_logon_id: 'buy***@sandbox.com',
          trade_status: tradeStatusOf(order),
          total_amount: fenToYuan(order.paid_amount ?? order.amount),
        };
        if (order.paid_ms !== null) {
          node.buyer_pay_amount = fenToYuan(order.paid_amount ?? order.amount);
          node.receipt_amount = node.buyer_pay_amount;
          node.send_pay_date = toShanghaiTime(order.paid_ms);
        }
        return signed(method, ok(node));
      }
      case 'alipay.trade.close': {
        if (!order) return signed(method, bizFail('ACQ.TRADE_NOT_EXIST', '交易不存在'));
        if (order.status !== 'pending') return signed(method, bizFail('ACQ.TRADE_STATUS_ERROR', '交易状态不合法'));
        book.close(order.out_trade_no);
        return signed(method, ok({ trade_no: order.order_id, out_trade_no: order.out_trade_no }));
      }
      case 'alipay.trade.refund': {
        const requestNo = str(biz, 'out_request_no') ?? outTradeNo ?? '';
        const amount = yuanToFen(str(biz, 'refund_amount') ?? '');
        if (!outTradeNo || amount === null || amount <= 0) return signed(method, invalid('isv.invalid-parameter', 'refund_amount 无效'));
        const seen = order?.refunds.some((r) => r.out_refund_no === requestNo) ?? false;
        const r = book.refund(outTradeNo, requestNo, amount);
        if (r === 'unknown') return signed(method, bizFail('ACQ.TRADE_NOT_EXIST', '交易不存在'));
        if (r === 'not_paid') return signed(method, bizFail('ACQ.TRADE_STATUS_ERROR', '交易状态不合法'));
        if (r === 'too_much') return signed(method, bizFail('ACQ.REFUND_AMT_NOT_EQUAL_TOTAL', '退款金额超限'));
        const o = book.get(outTradeNo)!;
        return signed(method, ok({
          trade_no: o.trade_no,
          out_trade_no: outTradeNo,
          buyer_logon_id: 'buy***@sandbox.com',
          fund_change: seen ? 'N' : 'Y',
          refund_fee: fenToYuan(o.refunds.reduce((s, x) => s + x.amount, 0)),
          gmt_refund_pay: toShanghaiTime(r.at_ms),
        }));
      }
      case 'alipay.trade.fastpay.refund.query': {
        const requestNo = str(biz, 'out_request_no');
        const r = order?.refunds.find((x) => x.out_refund_no === requestNo);
        if (!order || !r) return signed(method, ok({ out_trade_no: outTradeNo, out_request_no: requestNo }));
        return signed(method, ok({ trade_no: order.trade_no, out_trade_no: order.out_trade_no, out_request_no: r.out_refund_no, total_amount: fenToYuan(order.amount), refund_amount: fenToYuan(r.amount), refund_status: 'REFUND_SUCCESS' }));
      }
      case 'alipay.data.dataservice.bill.downloadurl.query': {
        const day = str(biz, 'bill_date');
        if (str(biz, 'bill_type') !== 'trade' || !day || !/^\d{4}-\d{2}-\d{2}$/.test(day)) return signed(method, invalid('isv.invalid-parameter', 'bill_type 或 bill_date 无效'));
        return signed(method, ok({ bill_download_url: `${base}/downloadBillFile.resource?bizType=trade&userId=${sellerId}&fileType=csv&bizDates=${day.replaceAll('-', '')}&fileId=${randomBytes(8).toString('hex')}` }));
      }
      default:
        return signed(method, invalid('isv.invalid-method', '不存在的方法名'));
    }
  }

  /** The trade bill (业务明细) of one day, in the layout of Alipay's CSV. */
  function bill(book: OrderBook, day: string): string {
    const rows = book.bill(day).map(({ order, refund, at_ms, fee }) => {
      const cells: Record<string, string> = Object.fromEntries(ALIPAY_BILL_COLUMNS.map((c) => [c, '']));
      cells['支付宝交易号'] = order.trade_no ?? '';
      cells['商户订单号'] = order.out_trade_no;
      cells['商品名称'] = order.subject;
      cells['创建时间'] = toShanghaiTime(order.created_ms);
      cells['完成时间'] = toShanghaiTime(at_ms);
      cells['对方账户'] = 'buy***@sandbox.com';
      for (const c of ['支付宝红包（元）', '集分宝（元）', '支付宝优惠（元）', '商家优惠（元）', '券核销金额（元）', '商家红包消费金额（元）', '卡消费金额（元）', '分润（元）']) cells[c] = '0.00';
      if (refund) {
        cells['业务类型'] = '退款';
        cells['订单金额（元）'] = fenToYuan(order.paid_amount ?? order.amount);
        cells['商家实收（元）'] = `-${fenToYuan(refund.amount)}`;
        cells['退款批次号/请求号'] = refund.out_refund_no;
        cells['服务费（元）'] = fee === 0 ? '0.00' : fenToYuan(fee);
      } else {
        const paid = order.paid_amount ?? order.amount;
        cells['业务类型'] = '交易';
        cells['订单金额（元）'] = fenToYuan(paid);
        cells['商家实收（元）'] = fenToYuan(paid);
        cells['服务费（元）'] = fee === 0 ? '0.00' : `-${fenToYuan(fee)}`;
      }
      return ALIPAY_BILL_COLUMNS.map((c) => csvCell(cells[c] ?? '')).join(',');
    });
    const [y, m, d] = day.split('-');
    return [
      '#支付宝业务明细查询',
      `#账号：[${sellerId}0156]`,
      `#起始日期：[${y}年${m}月${d}日 00:00:00]   终止日期：[${y}年${m}月${d}日 23:59:59]`,
      '#-----------------------------------------业务明细列表----------------------------------------',
      ALIPAY_BILL_COLUMNS.join(','),
      ...rows,
      '#-----------------------------------------业务明细列表结束------------------------------------',
      `#导出时间：[${toShanghaiTime(Date.now())}]`,
      '',
    ].join('\r\n');
  }

  async function callbackBody(order: SandboxOrder, refund: SandboxRefund | null): Promise<string> {
    const paid = order.paid_amount ?? order.amount;
    const p: Params = {
      notify_time: toShanghaiTime(Date.now()),
      notify_type: 'trade_status_sync',
      notify_id: `2024${randomBytes(15).toString('hex')}`,
      app_id: appId,
      auth_app_id: appId,
      charset: 'utf-8',
      version: '1.0',
      sign_type: 'RSA2',
      trade_no: order.trade_no ?? '',
      out_trade_no: order.out_trade_no,
      buyer_id: '2088102175953034',
      buyer_logon_id: 'buy***@sandbox.com',
      seller_id: sellerId,
      seller_email: 'seller@sandbox.com',
      trade_status: tradeStatusOf(order),
      total_amount: fenToYuan(paid),
      receipt_amount: fenToYuan(paid),
      invoice_amount: fenToYuan(paid),
      buyer_pay_amount: fenToYuan(paid),
      point_amount: '0.00',
      subject: order.subject,
      gmt_create: toShanghaiTime(order.created_ms),
      gmt_payment: toShanghaiTime(order.paid_ms ?? Date.now()),
      fund_bill_list: JSON.stringify([{ amount: fenToYuan(paid), fundChannel: 'ALIPAYACCOUNT' }]),
    };
    if (refund) {
      const upTo = order.refunds.slice(0, order.refunds.indexOf(refund) + 1).reduce((s, r) => s + r.amount, 0);
      p.out_biz_no = refund.out_refund_no;
      p.refund_fee = fenToYuan(upTo);
      p.gmt_refund = `${toShanghaiTime(refund.at_ms)}.${String(refund.at_ms % 1000).padStart(3, '0')}`;
      p.trade_status = upTo >= paid ? 'TRADE_CLOSED' : 'TRADE_SUCCESS';
      if (p.trade_status === 'TRADE_CLOSED') p.gmt_close = toShanghaiTime(refund.at_ms);
    }
    p.sign = await inlineCrypto.rsaSign(alipayPrivatePem, signContent(p, NOTIFY_SIGN_EXCLUDED));
    return new URLSearchParams(p).toString();
  }

  const spec: SandboxSpec = {
    channel: 'alipay',
    async handle(req, book) {
      if (req.path === '/gateway.do' && (req.method === 'POST' || req.method === 'GET')) return gateway(req, book);
      if (req.path === '/downloadBillFile.resource' && req.method === 'GET') {
        const d = req.query.get('bizDates') ?? '';
        if (!/^\d{8}$/.test(d)) return { status: 404, headers: { 'content-type': 'text/plain' }, body: 'no such bill' };
        return { status: 200, headers: { 'content-type': 'text/csv; charset=utf-8' }, body: bill(book, `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}`) };
      }
      if (req.path.startsWith('/qr/') && req.method === 'GET') {
        const order = [...book.orders.values()].find((o) => o.order_id === req.path.slice(4));
        if (!order) return null;
        return { status: 200, headers: { 'content-type': 'text/html;charset=utf-8' }, body: `<html><body>Alipay sandbox QR: ${order.out_trade_no} ¥${fenToYuan(order.amount)}</body></html>` };
      }
      return null;
    },
    systemError() {
      return { status: 200, headers: { 'content-type': 'text/html;charset=utf-8' }, body: JSON.stringify({ error_response: { code: '20000', msg: 'Service Currently Unavailable', sub_code: 'isp.unknow-error', sub_msg: '系统繁忙' } }) };
    },
    async callback(order, refund) {
      return { url: order.notify_url, headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' }, body: await callbackBody(order, refund) };
    },
    feeOf: alipaySandboxFee,
  };

  const kit = new SandboxKit(spec);
  const url = await kit.listen(opts.port ?? 0, opts.host ?? '127.0.0.1');
  base = url;
  const config: AlipayConfig = {
    gatewayUrl: `${url}/gateway.do`,
    appId,
    appPrivateKeyPem: app.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    alipayPublicKeyPem: alipay.publicKey.export({ type: 'spki', format: 'pem' }) as string,
  };
  return { kit, url, config };
}

/** The sandbox's own Alipay public key is in config; tests that sign as Alipay need the private one. */
export type AlipaySandbox = Awaited<ReturnType<typeof startAlipaySandbox>>;
