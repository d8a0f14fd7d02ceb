import logging
from collections import defaultdict

import pytz
from markupsafe import Markup

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import float_round, ormcache

_logger = logging.getLogger(__name__)

PRECISION = 1e-6


class CruxPrepareError(Exception):
    """Data in Odoo that cannot be reported to Crux as it is."""


class StockPicking(models.Model):
    _inherit = "stock.picking"

    crux_package_ids = fields.One2many(
        "crux.package", "picking_id", string="Crux Packages", copy=False
    )
    crux_state = fields.Selection(
        [
            ("not_applicable", "Not Applicable"),
            ("to_send", "To Send"),
            ("sent", "Sent"),
            ("failed", "Failed"),
        ],
        string="Crux Status",
        compute="_compute_crux_state",
        store=True,
        index=True,
        copy=False,
    )
    crux_package_uuid = fields.Char(
        string="Crux package_uuid",
        compute="_compute_crux_state",
        store=True,
        copy=False,
        help="The package_uuid(s) Crux returned, comma-separated when several.",
    )
    crux_last_error = fields.Text(string="Crux Error", compute="_compute_crux_last_error")
    crux_request_count = fields.Integer(compute="_compute_crux_request_count")
    crux_can_send = fields.Boolean(compute="_compute_crux_can_send")

    @api.depends("crux_package_ids.state", "crux_package_ids.package_uuid")
    def _compute_crux_state(self):
        for picking in self:
            states = set(picking.crux_package_ids.mapped("state"))
            if not states:
                picking.crux_state = "not_applicable"
            elif "failed" in states:
                picking.crux_state = "failed"
            elif states == {"sent"}:
                picking.crux_state = "sent"
            else:
                picking.crux_state = "to_send"
            picking.crux_package_uuid = (
                ", ".join(uuid for uuid in picking.crux_package_ids.mapped("package_uuid") if uuid)
                or False
            )

    @api.depends("crux_package_ids.last_error", "crux_package_ids.state")
    def _compute_crux_last_error(self):
        for picking in self:
            errors = [
                f"{package.name}: {package.last_error}"
                for package in picking.crux_package_ids
                if package.last_error and package.state in ("failed", "to_send")
            ]
            picking.crux_last_error = "\n".join(errors) or False

    def _compute_crux_request_count(self):
        data = self.env["crux.request.log"]._read_group(
            [("picking_id", "in", self.ids)], ["picking_id"], ["__count"]
        )
        counts = {picking.id: count for picking, count in data}
        for picking in self:
            picking.crux_request_count = counts.get(picking.id, 0)

    @api.depends("state", "crux_state", "sale_id.crux_order_uuid", "picking_type_code")
    def _compute_crux_can_send(self):
        for picking in self:
            picking.crux_can_send = (
                picking.state == "done"
                and picking._crux_applicable()
                and picking.crux_state != "sent"
            )

    # CRUD ----------------------------------------------------------------

    def write(self, vals):
        res = super().write(vals)
        if "carrier_tracking_ref" in vals:
            self._crux_tracking_changed()
        return res

    # Validation hook -------------------------------------------------------

    def _action_done(self):
        res = super()._action_done()
        # super() already ran the carrier integration (send_to_shipper), so the
        # tracking number, when the carrier gives one, is known here.
        todo = self.filtered(
            lambda p: p.state == "done" and p.company_id.crux_auto_send and p._crux_applicable()
        )
        if todo:
            todo._crux_enqueue(auto=True)
        return res

    def _crux_applicable(self):
        """Whether this transfer ships a sale order that is (or should be) on Crux."""
        self.ensure_one()
        if self.picking_type_code != "outgoing" or not self.sale_id:
            return False
        if self._crux_is_return():
            return False
        return bool(
            self.sale_id.crux_order_uuid
            or any(self.sale_id.order_line.mapped("crux_line_item_uuid"))
        )

    def _crux_is_return(self):
        return bool(self.return_id) or any(m.origin_returned_move_id for m in self.move_ids)

    def _crux_tracking_changed(self):
        """A tracking number arrived: packages that waited for it can go."""
        waiting = self.crux_package_ids.filtered(lambda p: p.state in ("waiting", "failed"))
        if waiting:
            waiting.picking_id.filtered(lambda p: p.state == "done")._crux_enqueue(auto=True)

    # Sending -------------------------------------------------------------

    def _crux_enqueue(self, auto=False):
        """Create or refresh the Crux packages of these done deliveries.

        Packages already sent (or being sent) are left alone; the others are
        rebuilt from the transfer as it is now, so a person's fix is used.
        :return: the crux.package records that are not sent yet
        """
        Package = self.env["crux.package"]
        pending = Package
        to_create = []
        for picking in self:
            existing = {p.quant_package_id.id: p for p in picking.crux_package_ids}
            for prepared in picking._crux_prepare_packages():
                package = existing.pop(prepared["quant_package"].id, Package)
                if package.state in ("sent", "sending"):
                    continue
                vals = Package._crux_values_from_prepared(picking, prepared)
                if package:
                    package.write(vals)
                    pending |= package
                else:
                    del vals["line_ids"]  # created below, all transfers at once
                    to_create.append((vals, prepared["lines"]))
            existing_unsent = Package.union(*existing.values()).filtered(
                lambda p: p.state not in ("sent", "sending")
            )
            existing_unsent.unlink()
        # One create for all new packages and one for all their lines: this
        # runs inside the validation (lines as x2many commands cost more).
        created = Package.create([vals for vals, _lines in to_create])
        self.env["crux.package.line"].create(
            [
                dict(line, package_id=package.id)
                for package, (_vals, lines) in zip(created, to_create, strict=True)
                for line in lines
            ]
        )
        pending |= created
        if auto:
            for package in pending.filtered(lambda p: p.state == "failed"):
                package.picking_id._crux_notify_failed(package)
        if auto and pending.filtered(lambda p: p.state == "to_send"):
            self.env.ref("crux_tracking.ir_cron_crux_send")._trigger()
        return pending

    def action_crux_send(self):
        """Send to Crux now what these done transfers have not sent yet, and show the result."""
        for picking in self:
            if picking.state != "done":
                raise UserError(
                    self.env._(
                        "Transfer %(name)s: only done transfers can be sent to Crux.",
                        name=picking.name,
                    )
                )
            if not picking._crux_applicable():
                raise UserError(
                    self.env._(
                        "Transfer %(name)s: it is not a delivery of a sale order linked to Crux "
                        "(set the Crux Order on the sale order).",
                        name=picking.name,
                    )
                )
        self.env.flush_all()
        # Work on a cursor of our own: what is claimed, sent and recorded is
        # committed at once and survives whatever happens to this request.
        with self.env.registry.cursor() as cr:
            pending = self.with_env(self.env(cr=cr))._crux_enqueue(auto=False)
            to_send = pending.filtered(lambda p: p.state == "to_send").ids
        self.env["crux.package"]._crux_send_due(package_ids=to_send)
        self.env.invalidate_all()
        # Read the outcome on a fresh cursor: this request's transaction took
        # its snapshot before the sending cursors committed, and would still
        # see the packages as they were.
        with self.env.registry.cursor() as cr:
            problems, uuids = self.with_env(self.env(cr=cr))._crux_send_result()
        if problems:
            raise UserError("\n".join(problems))
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "title": self.env._("Sent to Crux"),
                "message": self.env._("Crux package_uuid: %(uuids)s", uuids=uuids or "-"),
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }

    def _crux_send_result(self):
        """What a person is told after sending: (problem messages, package_uuids)."""
        problems = []
        for package in self.crux_package_ids:
            if package.state == "waiting":
                problems.append(
                    self.env._(
                        "Transfer %(name)s, package %(package)s: no tracking number. Enter the "
                        "transfer's Tracking Reference (or the package's Tracking Number).",
                        name=package.picking_id.name,
                        package=package.name,
                    )
                )
            elif package.state in ("failed", "to_send") and package.last_error:
                problems.append(
                    self.env._(
                        "Transfer %(name)s, package %(package)s: %(error)s",
                        name=package.picking_id.name,
                        package=package.name,
                        error=package.last_error,
                    )
                )
        uuids = ", ".join(self.crux_package_ids.filtered("package_uuid").mapped("package_uuid"))
        return problems, uuids

    def action_crux_retry(self):
        """Retry failed Crux packages (after the cause was fixed)."""
        return self.action_crux_send()

    def action_crux_view_requests(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "crux_tracking.crux_request_log_action"
        )
        action["domain"] = [("picking_id", "=", self.id)]
        action["context"] = {}
        return action

    def _crux_notify_sent(self, packages):
        """One log note per transfer naming the package_uuid of each package just sent.

        :param packages: ``crux.package`` records of these transfers, sent
        """
        lines = defaultdict(list)
        for package in packages:
            if package.recovered:
                line = self.env._(
                    "Crux already had the tracking %(tracking)s of package %(package)s (an "
                    "earlier answer was lost); its package_uuid could not be recovered.",
                    tracking=package.tracking_number,
                    package=package.name,
                )
            else:
                line = self.env._(
                    "Package %(package)s (tracking %(tracking)s) sent to Crux: "
                    "package_uuid %(uuid)s.",
                    package=package.name,
                    tracking=package.tracking_number,
                    uuid=package.package_uuid,
                )
            lines[package.picking_id.id].append(line)
        pickings = self.browse(list(lines))
        # Log notes, in one go: they name the package_uuids without notifying followers.
        pickings._message_log_batch(
            {picking_id: Markup("<br/>").join(texts) for picking_id, texts in lines.items()}
        )
        done = pickings.filtered(lambda p: p.crux_state == "sent")
        if not done:
            return
        activity_type_id = self.env.ref("crux_tracking.mail_activity_type_crux_failure").id
        activities = self.env["mail.activity"].search(
            [
                ("res_model", "=", self._name),
                ("res_id", "in", done.ids),
                ("activity_type_id", "=", activity_type_id),
            ]
        )
        activities.action_feedback(feedback=self.env._("Sent to Crux."))

    def _crux_notify_failed(self, package):
        """One open activity per transfer tells its responsible that Crux needs attention."""
        self.ensure_one()
        activity_type = self.env.ref("crux_tracking.mail_activity_type_crux_failure")
        if self.activity_ids.filtered(lambda a: a.activity_type_id == activity_type):
            return
        user = self.user_id or self.sale_id.user_id or self.env.ref("base.user_admin")
        self.activity_schedule(
            activity_type_id=activity_type.id,
            user_id=user.id,
            note=self.env._(
                "Package %(package)s could not be sent to Crux: %(error)s",
                package=package.name,
                error=package.last_error,
            ),
        )

    # Payload -------------------------------------------------------------

    def _crux_prepare_packages(self):
        """Describe what this transfer reports to Crux: one dict per Crux package.

        Each dict: ``quant_package`` (record, empty for unpacked lines), ``name``,
        ``order_uuid``, ``tracking_number``, ``payload`` (the JSON body),
        ``lines`` (crux.package.line values) and ``error`` (a message or False).
        """
        self.ensure_one()
        groups = defaultdict(lambda: self.env["stock.move.line"])
        for move_line in self.move_line_ids:
            if move_line.move_id.state == "done" and move_line.quantity:
                groups[move_line.result_package_id] |= move_line
        quant_packages = [key for key in groups if key]
        weights = quant_packages and self.env["stock.quant.package"].union(
            *quant_packages
        ).sudo()._get_weight(self.id)
        ordered = sorted(groups.items(), key=lambda item: (not item[0], item[0].id))
        result = []
        for index, (quant_package, move_lines) in enumerate(ordered):
            name = quant_package.name or self.name
            tracking = (
                quant_package.crux_tracking_number or self.carrier_tracking_ref or ""
            ).strip()
            prepared = {
                "quant_package": quant_package,
                "name": name,
                "order_uuid": self.sale_id.crux_order_uuid,
                "tracking_number": tracking,
                "payload": False,
                "lines": [],
                "error": False,
            }
            try:
                if not self.sale_id.crux_order_uuid:
                    raise CruxPrepareError(
                        self.env._(
                            "Transfer %(name)s: sale order %(order)s has no Crux Order.",
                            name=self.name,
                            order=self.sale_id.name,
                        )
                    )
                line_items, lines = self._crux_prepare_line_items(name, move_lines)
                weight = (
                    (quant_package.shipping_weight or weights.get(quant_package, 0.0))
                    if quant_package
                    else (
                        self.weight_bulk
                        if quant_packages
                        else (self.shipping_weight or self.weight)
                    )
                )
                prepared["payload"] = self._crux_prepare_payload(
                    quant_package, name, tracking, line_items, weight, first=index == 0
                )
                prepared["lines"] = lines
            except CruxPrepareError as exc:
                prepared["error"] = str(exc)
            result.append(prepared)
        return result

    def _crux_prepare_payload(self, quant_package, name, tracking, line_items, weight, first):
        """The JSON body of Add Order Tracking for one package."""
        payload = {"tracking_number": tracking}
        carrier = self.carrier_id
        if carrier:
            if carrier.crux_carrier_name or carrier.name:
                payload["supplier_provided_carrier"] = carrier.crux_carrier_name or carrier.name
            if carrier.crux_method:
                payload["supplier_provided_method"] = carrier.crux_method
        if weight:
            payload["package_weight"] = self._crux_weight_lb(weight)
        if first and self.carrier_price:
            payload["package_ship_cost"] = float_round(self.carrier_price, 2)
        ship_date = self._crux_ship_date()
        if ship_date:
            payload["package_ship_date"] = ship_date
        payload["line_items"] = line_items
        payload["package_attributes"] = self._crux_package_attributes(quant_package, name)
        return payload

    def _crux_package_attributes(self, quant_package, name):
        attributes = [
            {"attribute_name": "odoo_transfer", "attribute_value": self.name},
            {"attribute_name": "odoo_package", "attribute_value": name},
        ]
        return attributes + self.company_id._crux_default_attributes()

    def _crux_weight_lb(self, weight):
        """A weight in the database's weight unit, in pounds with 2 decimals."""
        uom_id, pound_id = self._crux_weight_uom_ids()
        if uom_id != pound_id:
            uom, pound = self.env["uom.uom"].browse([uom_id, pound_id])  # read together
            weight = uom._compute_quantity(weight, pound, round=False)
        return float_round(weight, 2)

    @api.model
    @ormcache()
    def _crux_weight_uom_ids(self):
        """(the database's weight unit, the pound) as ids.

        Cached: each ``env.ref`` checks its record exists with a query, and a
        validation converts the weight of every package. Changing the weight
        unit (a system parameter) clears the registry's caches, this one too.
        """
        uom = self.env["product.template"]._get_weight_uom_id_from_ir_config_parameter()
        return uom.id, self.env.ref("uom.product_uom_lb").id

    def _crux_ship_date(self):
        """The day the transfer was done, in the company's time zone, as YYYY-MM-DD."""
        if not self.date_done:
            return False
        tz = pytz.timezone(self.company_id.partner_id.tz or self.env.user.tz or "UTC")
        local = pytz.utc.localize(self.date_done).astimezone(tz)
        return local.date().isoformat()

    def _crux_prepare_line_items(self, package_name, move_lines):
        """Crux line items for the move lines of one package.

        Quantities are summed per sale line, in the sale line's unit; a kit's
        components count toward the kit's sale line.
        :return: (payload line items, crux.package.line values)
        :raises CruxPrepareError: with a message naming the transfer and the line at fault
        """
        quantities = defaultdict(float)
        kit_components = defaultdict(lambda: defaultdict(float))
        for move_line in move_lines:
            move = move_line.move_id
            sale_line = move.sale_line_id
            if not sale_line:
                raise CruxPrepareError(
                    self.env._(
                        "Transfer %(name)s, package %(package)s: %(product)s is not on a line of "
                        "sale order %(order)s, so Crux cannot be told about it.",
                        name=self.name,
                        package=package_name,
                        product=move_line.product_id.display_name,
                        order=self.sale_id.name,
                    )
                )
            bom_line = move.bom_line_id if "bom_line_id" in move._fields else False
            if bom_line and move.product_id != sale_line.product_id:
                kit_components[sale_line][bom_line] += move_line.product_uom_id._compute_quantity(
                    move_line.quantity, bom_line.product_uom_id, round=False
                )
            else:
                quantities[sale_line] += move_line.product_uom_id._compute_quantity(
                    move_line.quantity, sale_line.product_uom, round=False
                )
        for sale_line, components in kit_components.items():
            quantities[sale_line] += self._crux_kit_quantity(sale_line, components)
        line_items, lines = [], []
        for sale_line, quantity in sorted(quantities.items(), key=lambda item: item[0].id):
            whole = round(quantity)
            if abs(quantity - whole) > PRECISION:
                raise CruxPrepareError(
                    self.env._(
                        "Transfer %(name)s, package %(package)s: %(quantity)s %(uom)s of "
                        "%(product)s (order %(order)s) is not a whole number of the order line's "
                        "unit; Crux only accepts whole units.",
                        name=self.name,
                        package=package_name,
                        quantity=float_round(quantity, 4),
                        uom=sale_line.product_uom.name,
                        product=sale_line.product_id.display_name,
                        order=sale_line.order_id.name,
                    )
                )
            if not whole:
                continue
            if not sale_line.crux_line_item_uuid:
                raise CruxPrepareError(
                    self.env._(
                        "Transfer %(name)s, package %(package)s: the line %(product)s of order "
                        "%(order)s has no Crux Line Item. Press 'Fetch Crux Line Items' on the "
                        "order or fill it in.",
                        name=self.name,
                        package=package_name,
                        product=sale_line.product_id.display_name,
                        order=sale_line.order_id.name,
                    )
                )
            cost = float_round(sale_line.price_unit, 2)
            line_items.append(
                {
                    "line_item_uuid": sale_line.crux_line_item_uuid,
                    "quantity_shipped": int(whole),
                    "supplier_provided_sku_cost": cost,
                }
            )
            lines.append(
                {
                    "sale_line_id": sale_line.id,
                    "line_item_uuid": sale_line.crux_line_item_uuid,
                    "quantity": int(whole),
                    "sku_cost": cost,
                }
            )
        if not line_items:
            raise CruxPrepareError(
                self.env._(
                    "Transfer %(name)s, package %(package)s: no whole unit of an order line "
                    "is shipped in it.",
                    name=self.name,
                    package=package_name,
                )
            )
        return line_items, lines

    def _crux_kit_quantity(self, sale_line, components):
        """How many kits (in the sale line's unit) the shipped components make."""
        kits = None
        bom = False
        for bom_line, quantity in components.items():
            bom = bom_line.bom_id
            per_kit = bom_line.product_qty / (bom.product_qty or 1.0)
            if per_kit <= 0:
                continue
            count = quantity / per_kit
            kits = count if kits is None else min(kits, count)
        if not kits or not bom:
            return 0.0
        return bom.product_uom_id._compute_quantity(kits, sale_line.product_uom, round=False)
