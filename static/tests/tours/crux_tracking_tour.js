/** @odoo-module **/

import { registry } from "@web/core/registry";

registry.category("web_tour.tours").add("crux_tracking_send_tour", {
    steps: () => [
        {
            content: "The done transfer offers to send it to Crux",
            trigger: ".o_form_view button[name=action_crux_send]",
            run: "click",
        },
        {
            content: "The Crux status turns to Sent",
            trigger: ".o_form_view .o_field_widget[name=crux_state] .badge:contains(Sent)",
        },
        {
            content: "Open the Crux tab",
            trigger: ".o_notebook .nav-link:contains(Crux)",
            run: "click",
        },
        {
            content: "The package_uuid Crux returned is shown",
            trigger: ".o_form_view .o_field_widget[name=crux_package_uuid]:contains(-)",
        },
    ],
});
